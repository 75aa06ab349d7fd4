"""`mixture`: Gaussian and Student-t mixtures in the joint (x, y) space (test only).

The paper's families are unimodal, and under their increasing elementwise maps the sign of the
dependence between x and y never changes. A mixture of K components with random means and
random covariances is multimodal, and its dependence is non-monotone: each component has its
own (randomly signed) x-y correlation, and the component means couple x and y through the
hidden label.

- `mix-gauss-k2_6`: K ~ U{2..6} Gaussian components, weights ~ Dirichlet(2, ..., 2).
- `mix-student-k2_6`: the same with multivariate-t components, df_k ~ U(1, 10) per component.

Parameters (per dataset): component means N(0, sep^2 / d_block) per coordinate of each block
(so the distance between two components' x parts is ~ sep * sqrt(2) whatever dx), sep ~ U(0.5, 4);
covariance (t: dispersion) of component k = diag(U(0.5, 1.5)) + B_k B_k^T, B_k a D x r_k matrix of
N(0, lam_k^2) loadings over both blocks, r_k ~ U{1..3}, lam_k ~ U(0.2, 1).

MI has no closed form. It is computed by Monte Carlo from the exact densities,
MI = E[log p(x, y) - log p(x) - log p(y)]; the marginals of a Gaussian mixture are the Gaussian
mixtures of the marginal blocks, those of a t mixture are t mixtures with the same df. The
expectation is stratified by component (rows of component k drawn from component k, weighted by
w_k) and uses the component's own point-wise MI as a control variate, whose mean under the
component is known exactly (Gaussian: from the log-determinants; t: plus BMI's df correction):

    MI = sum_k w_k (I_k + E_k[pmi_mix - pmi_k]).

When the components are well separated pmi_mix - pmi_k is nearly the constant -log w_k, so few
rows reach a small standard error. Rows are added per stratum (Neyman allocation from a pilot)
until the standard error is <= 0.009 nats; `params["mi_se"]` records it (always <= 0.01) and
`params["mi_rows"]` the rows used. The Monte Carlo seed comes from the draw's rng, so a draw is
deterministic. An estimate below 0 (possible only near independence) is recorded as 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import digamma, gammaln

from estimators.synthetic.paper_families import Distribution

TARGET_SE = 0.01  # the bound recorded standard errors must meet
STOP_SE = 0.009  # the Monte Carlo loop stops below this
_PLAN_SE = 0.008  # and plans its next rows for this
_PILOT = 400  # rows per stratum in the first round
_BATCH = 8192  # rows evaluated at once
_MAX_ROWS = 3_000_000  # a run that needs more is an error (never reached by the registered families)
_LOG_2PI = float(np.log(2 * np.pi))


def logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    """log(sum(exp(a))) along `axis`, in plain numpy (scipy's goes through its array-API layer,
    which breaks when a blocked `jax` sits in sys.modules)."""
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def _std_student_entropy(k: int, df: np.ndarray) -> np.ndarray:
    """Differential entropy of the standard k-dimensional t (identity dispersion), in log-gamma form."""
    half = 0.5 * (df + k)
    return (
        -gammaln(half) + gammaln(0.5 * df) + 0.5 * k * np.log(df * np.pi) + half * (digamma(half) - digamma(0.5 * df))
    )


def student_correction(df: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """h(dx) + h(dy) - h(dx + dy) of standard t's: a multivariate t's MI minus the Gaussian MI of its dispersion."""
    return _std_student_entropy(dx, df) + _std_student_entropy(dy, df) - _std_student_entropy(dx + dy, df)


@dataclasses.dataclass(frozen=True, eq=False)  # arrays: compare by identity
class Mixture:
    """K components, Gaussian (dfs None) or multivariate t, in D = dx + dy dimensions; x is the first dx."""

    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    covs: np.ndarray  # (K, D, D): covariances, or dispersions for t components
    dx: int
    dfs: np.ndarray | None = None  # (K,)

    def __post_init__(self) -> None:
        k, d = self.means.shape
        if not (self.weights.shape == (k,) and self.covs.shape == (k, d, d) and 1 <= self.dx < d):
            raise ValueError("mixture: inconsistent shapes")
        chol = np.linalg.cholesky(self.covs)
        chol_y = np.linalg.cholesky(self.covs[:, self.dx :, self.dx :])
        eye, eye_y = np.eye(d), np.eye(d - self.dx)
        # Inverse Cholesky factors: z = L^-1 (v - mu). L is lower triangular, so the first dx entries
        # of z are L_xx^-1 (x - mu_x): the x marginal's Mahalanobis terms come free with the joint's.
        linv = np.stack([solve_triangular(c, eye, lower=True) for c in chol])
        linv_y = np.stack([solve_triangular(c, eye_y, lower=True) for c in chol_y])
        diag = np.log(np.diagonal(chol, axis1=1, axis2=2))
        half_logdet = {"xy": diag.sum(1), "x": diag[:, : self.dx].sum(1)}
        half_logdet["y"] = np.log(np.diagonal(chol_y, axis1=1, axis2=2)).sum(1)
        mi = half_logdet["x"] + half_logdet["y"] - half_logdet["xy"]  # each component's own MI
        if self.dfs is not None:
            mi = mi + student_correction(self.dfs, self.dx, d - self.dx)
        for name, val in (("chol", chol), ("linv", linv), ("linv_y", linv_y), ("half_logdet", half_logdet)):
            object.__setattr__(self, name, val)
        object.__setattr__(self, "component_mi", mi)
        object.__setattr__(self, "log_w", np.log(self.weights))

    @property
    def k(self) -> int:
        return len(self.weights)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def _log_kernel(self, maha: np.ndarray, part: str, dim: int) -> np.ndarray:
        """log density from Mahalanobis terms (n, K) of the joint ("xy") or a marginal block."""
        if self.dfs is None:
            return -0.5 * dim * _LOG_2PI - self.half_logdet[part] - 0.5 * maha
        df = self.dfs
        const = gammaln(0.5 * (df + dim)) - gammaln(0.5 * df) - 0.5 * dim * np.log(df * np.pi)
        return const - self.half_logdet[part] - 0.5 * (df + dim) * np.log1p(maha / df)

    def component_logpdfs(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """log densities (n, K) of every component at rows v: joint, x marginal, y marginal."""
        n, dx = len(v), self.dx
        mj, mx, my = (np.empty((n, self.k)) for _ in range(3))
        for k in range(self.k):
            z = (v - self.means[k]) @ self.linv[k].T
            sq = z * z
            mx[:, k] = sq[:, :dx].sum(1)
            mj[:, k] = mx[:, k] + sq[:, dx:].sum(1)
            zy = (v[:, dx:] - self.means[k, dx:]) @ self.linv_y[k].T
            my[:, k] = np.einsum("ij,ij->i", zy, zy)
        return (
            self._log_kernel(mj, "xy", self.dim),
            self._log_kernel(mx, "x", dx),
            self._log_kernel(my, "y", self.dim - dx),
        )

    def log_densities(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(log p(x, y), log p(x), log p(y)) of the mixture at rows (x, y)."""
        lj, lx, ly = self.component_logpdfs(np.hstack([x, y]))
        return tuple(logsumexp(a + self.log_w, axis=1) for a in (lj, lx, ly))

    def sample_component(self, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
        v = rng.standard_normal((n, self.dim)) @ self.chol[k].T
        if self.dfs is not None:
            v /= np.sqrt(rng.chisquare(self.dfs[k], size=(n, 1)) / self.dfs[k])
        return v + self.means[k]

    def __call__(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """n rows of the mixture, split into x | y."""
        comp = rng.choice(self.k, size=n, p=self.weights)
        v = rng.standard_normal((n, self.dim))
        scale = None
        if self.dfs is not None:
            df = self.dfs[comp]
            scale = np.sqrt(rng.chisquare(df) / df)[:, None]
        for k in range(self.k):
            rows = comp == k
            v[rows] = v[rows] @ self.chol[k].T
        if scale is not None:
            v /= scale
        v += self.means[comp]
        return v[:, : self.dx], v[:, self.dx :]

    def pmi_terms(self, k: int, n: int, rng: np.random.Generator, control_variate: bool = True) -> np.ndarray:
        """Point-wise MI of the mixture at n rows of component k, minus (with the control variate)
        the component's own point-wise MI and plus its known mean."""
        lj, lx, ly = self.component_logpdfs(self.sample_component(k, n, rng))
        lw = self.log_w
        pmi = logsumexp(lj + lw, axis=1) - logsumexp(lx + lw, axis=1) - logsumexp(ly + lw, axis=1)
        if control_variate:
            pmi = pmi - (lj[:, k] - lx[:, k] - ly[:, k]) + self.component_mi[k]
        return pmi


def stratified_mean(
    weights: np.ndarray,
    terms: Callable[[int, int, np.random.Generator], np.ndarray],
    seed: int,
    stop_se: float = STOP_SE,
) -> tuple[float, float, int]:
    """sum_k w_k E_k[terms] by stratified Monte Carlo: (estimate, standard error, rows used).

    `terms(k, n, rng)` returns n i.i.d. values from stratum k. A pilot of `_PILOT` rows per stratum
    gives the per-stratum standard deviations; rows are then added by Neyman allocation until the
    standard error is <= `stop_se`. Deterministic given `seed` (each stratum has its own stream)."""
    weights = np.asarray(weights, dtype=float)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(len(weights))]
    vals: list[list[np.ndarray]] = [[] for _ in weights]
    counts = np.zeros(len(weights), dtype=np.int64)

    def draw(k: int, n: int) -> None:
        while n > 0:
            m = min(n, _BATCH)
            out = np.asarray(terms(k, m, rngs[k]), dtype=float)
            if not np.isfinite(out).all():
                raise FloatingPointError("Monte Carlo MI: a non-finite point-wise term")
            vals[k].append(out)
            counts[k] += m
            n -= m

    for k in range(len(weights)):
        draw(k, _PILOT)
    while True:
        cat = [np.concatenate(v) for v in vals]
        sd = np.array([c.std(ddof=1) for c in cat])
        se = float(np.sqrt(np.sum(weights**2 * sd**2 / counts)))
        if se <= stop_se:
            break
        # Neyman allocation: n_k proportional to w_k sd_k, total sized for _PLAN_SE.
        ws = weights * sd
        total = ws.sum() ** 2 / _PLAN_SE**2
        want = np.ceil(total * ws / ws.sum()).astype(np.int64)
        extra = np.maximum(want - counts, 0)
        if extra.sum() == 0:  # the pilot's sd underestimated: grow the largest contributor
            worst = int(np.argmax(weights**2 * sd**2 / counts))
            extra[worst] = counts[worst]
        if counts.sum() + extra.sum() > _MAX_ROWS:
            raise RuntimeError(f"Monte Carlo MI needs more than {_MAX_ROWS} rows (se {se:.4f} at {counts.sum()})")
        for k in np.flatnonzero(extra):
            draw(int(k), int(extra[k]))
    est = float(np.sum(weights * np.array([c.mean() for c in cat])))
    return est, se, int(counts.sum())


def mixture_mi(mix: Mixture, seed: int, control_variate: bool = True, stop_se: float = STOP_SE):
    """(MI estimate, standard error, rows) of a mixture by stratified Monte Carlo."""
    return stratified_mean(mix.weights, lambda k, n, g: mix.pmi_terms(k, n, g, control_variate), seed, stop_se)


def random_mixture(dx: int, dy: int, rng: np.random.Generator, student: bool, k_range=(2, 6)):
    """A mixture with the family's random parameters, and its JSON-ready summary."""
    d = dx + dy
    k = int(rng.integers(k_range[0], k_range[1] + 1))
    weights = rng.dirichlet(np.full(k, 2.0))
    sep = float(rng.uniform(0.5, 4.0))
    means = rng.standard_normal((k, d))
    means[:, :dx] *= sep / np.sqrt(dx)
    means[:, dx:] *= sep / np.sqrt(dy)
    ranks = rng.integers(1, 4, size=k)
    lams = rng.uniform(0.2, 1.0, size=k)
    covs = np.empty((k, d, d))
    for j in range(k):
        b = rng.normal(0.0, lams[j], size=(d, int(ranks[j])))
        covs[j] = np.diag(rng.uniform(0.5, 1.5, size=d)) + b @ b.T
    dfs = rng.uniform(1.0, 10.0, size=k) if student else None
    mix = Mixture(weights, means, covs, dx, dfs)
    params = {
        "k": k,
        "weights": weights.tolist(),
        "sep": sep,
        "ranks": ranks.tolist(),
        "loadings": lams.tolist(),
        **({"dfs": dfs.tolist()} if student else {}),
    }
    return mix, params


@dataclasses.dataclass(frozen=True)
class MixtureFamily:
    name: str
    student: bool
    k_range: tuple[int, int] = (2, 6)
    min_dim: int = 1
    stop_se: float = STOP_SE  # Monte Carlo stops below this standard error (training families: looser)

    def draw(self, dx: int, dy: int, rng: np.random.Generator) -> Distribution:
        if min(dx, dy) < self.min_dim:
            raise ValueError(f"family {self.name} needs dx, dy >= {self.min_dim}, got {dx}, {dy}")
        mix, params = random_mixture(dx, dy, rng, self.student, self.k_range)
        seed = int(rng.integers(2**63))
        mi, se, rows = mixture_mi(mix, seed, stop_se=self.stop_se)
        params.update(mi_se=se, mi_rows=rows, mi_mc_estimate=mi)
        return Distribution(self.name, dx, dy, max(0.0, mi), params, mix)


MIXTURE_FAMILIES = (
    MixtureFamily("mix-gauss-k2_6", student=False),
    MixtureFamily("mix-student-k2_6", student=True),
)
