"""`mixed`: discrete and mixed discrete-continuous families with known MI (test only).

Every family of the paper is continuous. Here x (and in two families y) is discrete: integer values
stored as floats. A categorical variable C with K categories is written into dx columns by a random
*code table*: column 0 is C's category under a random permutation of 0..K-1 (the order of the codes
carries no meaning), each other column is, with probability 1/2, a random (not necessarily
injective) function of C into 0..K-1, else independent uniform noise over 2..5 levels. Column 0 is
injective, and the noise is independent of everything, so I(X; Y) = I(C; Y).

- `mixed-cat_gauss`: C ~ Categorical(w), K ~ U{2..8}, w ~ Dirichlet(2); y | C=c ~ N(mu_c, Sigma_c),
  mu_c ~ N(0, sep^2 / dy) per coordinate, sep ~ U(0.3, 4), Sigma_c = diag(U(0.5, 1.5)) + b b^T with
  b ~ N(0, 0.5^2) (one random direction per category). MI = E[log p(y | c) - log p(y)] by Monte Carlo
  stratified by category (`mixture_families.stratified_mean`), standard error <= 0.01 nats
  recorded as `mi_se` (the loop stops below 0.009).
- `mixed-cat_cat`: both variables categorical, Kx, Ky ~ U{2..10}, the joint pmf ~ Dirichlet(alpha)
  over the Kx x Ky table with alpha ~ logU(0.05, 2) (small alpha: sparse table, high MI). MI is exact:
  sum p log(p / (p_x p_y)).
- `mixed-cat_poisson`: counts. y_j | C=c ~ Poisson(lambda_cj) independently, K ~ U{2..8},
  lambda_cj = r_j exp(s z_cj / sqrt(dy)) with r_j ~ logU(0.5, 20), z_cj ~ N(0, 1), s ~ U(0.2, 3).
  MI = E[log p(y | c) - log p(y)] by stratified Monte Carlo as for cat_gauss.
- `mixed-poisson_common`: correlated counts through a common component. For j < m (m ~ U{1..min(dx, dy)}),
  X_j = A_j + S_j and Y_j = B_j + S_j with independent A_j ~ Poisson(la), B_j ~ Poisson(lb),
  S_j ~ Poisson(ls) (la, lb ~ U(0.1, 5), ls ~ U(0.2, 10)); every other coordinate is independent
  Poisson(U(0.5, 10)) noise. MI is the sum over pairs of the exact sum of p log(p / (p_x p_y)) over
  a box [0, M]^2 (p_x, p_y are Poisson(la + ls), Poisson(lb + ls)). The part outside the box lies in
  [-(P(X > M) + P(Y > M)), E[-log p_x(X); X > M] + E[-log p_y(Y); Y > M]]; M is chosen so that this
  bound is < 1e-9, and the bound is recorded as `truncation_bound`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.stats import poisson

from estimators.synthetic.mixture_families import STOP_SE, logsumexp, stratified_mean
from estimators.synthetic.paper_families import Distribution, KindFamily

_LOG_2PI = float(np.log(2 * np.pi))


# ---------------------------------------------------------------------------
# Codes: a categorical variable written into d integer columns.


@dataclasses.dataclass(frozen=True, eq=False)
class Code:
    """table[c, j]: the value of column j for category c (-1: column j is noise with levels[j] levels)."""

    table: np.ndarray  # (K, d) int
    levels: np.ndarray  # (d,) int, > 0 for noise columns

    def __call__(self, c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = self.table[c].astype(float)
        for j in np.flatnonzero(self.levels):
            out[:, j] = rng.integers(0, self.levels[j], size=len(c))
        return out

    def params(self) -> dict:
        return {"codes": self.table.tolist(), "noise_levels": self.levels.tolist()}


def random_code(k: int, d: int, rng: np.random.Generator) -> Code:
    table = np.empty((k, d), dtype=np.int64)
    levels = np.zeros(d, dtype=np.int64)
    table[:, 0] = rng.permutation(k)
    for j in range(1, d):
        if rng.random() < 0.5:
            table[:, j] = rng.integers(0, k, size=k)
        else:
            table[:, j], levels[j] = -1, int(rng.integers(2, 6))
    return Code(table, levels)


# ---------------------------------------------------------------------------
# MI of a categorical C and a continuous or count y | C.


def table_mi(pmf: np.ndarray) -> float:
    """Exact I(X; Y) in nats of a joint pmf table (rows: x, columns: y)."""
    p = np.asarray(pmf, dtype=float)
    p = p / p.sum()
    px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float(max(0.0, np.sum(p[nz] * (np.log(p[nz]) - np.log((px * py)[nz])))))


@dataclasses.dataclass(frozen=True, eq=False)
class GaussianGivenCategory:
    """y | C=c ~ N(means[c], covs[c])."""

    means: np.ndarray  # (K, dy)
    covs: np.ndarray  # (K, dy, dy)

    def __post_init__(self) -> None:
        chol = np.linalg.cholesky(self.covs)
        object.__setattr__(self, "chol", chol)
        object.__setattr__(self, "linv", np.linalg.inv(chol))
        object.__setattr__(self, "half_logdet", np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(1))

    def sample(self, c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        y = rng.standard_normal((len(c), self.means.shape[1]))
        for k in range(len(self.means)):
            rows = c == k
            y[rows] = y[rows] @ self.chol[k].T
        return y + self.means[c]

    def log_lik(self, y: np.ndarray) -> np.ndarray:
        """(n, K) log p(y | c) up to a term that does not depend on c."""
        out = np.empty((len(y), len(self.means)))
        for k in range(len(self.means)):
            z = (y - self.means[k]) @ self.linv[k].T
            out[:, k] = -0.5 * np.einsum("ij,ij->i", z, z) - self.half_logdet[k]
        return out


@dataclasses.dataclass(frozen=True, eq=False)
class PoissonGivenCategory:
    """y_j | C=c ~ Poisson(rates[c, j]), independent over j."""

    rates: np.ndarray  # (K, dy)

    def sample(self, c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.poisson(self.rates[c]).astype(float)

    def log_lik(self, y: np.ndarray) -> np.ndarray:
        """(n, K) log p(y | c) up to -sum log y_j!, which does not depend on c."""
        return y @ np.log(self.rates).T - self.rates.sum(1)


def category_mi(weights: np.ndarray, cond, seed: int, stop_se: float = STOP_SE) -> tuple[float, float, int]:
    """I(C; Y) = E[log p(y | c) - log p(y)] by Monte Carlo stratified by c: (estimate, se, rows)."""
    log_w = np.log(weights)

    def terms(k: int, n: int, g: np.random.Generator) -> np.ndarray:
        ll = cond.log_lik(cond.sample(np.full(n, k), g))
        return ll[:, k] - logsumexp(ll + log_w, axis=1)

    return stratified_mean(weights, terms, seed, stop_se)


# ---------------------------------------------------------------------------
# Correlated counts through a common component.


def _tail(lam: float, m: int) -> tuple[float, float]:
    """(P(X > m), E[-log p(X); X > m]) for X ~ Poisson(lam), summed until the terms vanish."""
    x = np.arange(m + 1, m + 1 + 400 + int(10 * np.sqrt(lam)))
    lp = poisson.logpmf(x, lam)
    return float(np.exp(lp).sum()), float(np.sum(np.exp(lp) * -lp))


def poisson_common_mi(la: float, lb: float, ls: float, bound: float = 1e-9) -> tuple[float, float]:
    """I(A + S; B + S) for independent Poissons A, B, S with rates la, lb, ls, by exact summation
    over a box [0, M]^2: (MI, bound on the part outside the box)."""
    lx, ly = la + ls, lb + ls
    m = int(max(poisson.isf(1e-14, lx), poisson.isf(1e-14, ly))) + 10
    while True:
        tx, ex = _tail(lx, m)
        ty, ey = _tail(ly, m)
        err = max(tx + ty, ex + ey)
        if err < bound:
            break
        m += 10
    grid = np.arange(m + 1)
    pa, pb, ps = poisson.pmf(grid, la), poisson.pmf(grid, lb), poisson.pmf(grid, ls)
    joint = np.zeros((m + 1, m + 1))
    for s in range(m + 1):  # P(X = x, Y = y) = sum_s P(S = s) P(A = x - s) P(B = y - s)
        joint[s:, s:] += ps[s] * np.outer(pa[: m + 1 - s], pb[: m + 1 - s])
    px, py = poisson.pmf(grid, lx), poisson.pmf(grid, ly)
    nz = joint > 0
    ratio = np.log(joint[nz]) - np.log(np.outer(px, py)[nz])
    return float(np.sum(joint[nz] * ratio)), float(err)


# ---------------------------------------------------------------------------
# The families.


@dataclasses.dataclass(frozen=True)
class DiscreteFamily(KindFamily):
    stop_se: float = STOP_SE  # Monte Carlo stops below this standard error (training families: looser)

    def _category_given(self, dx, dy, rng, cond, k, weights, extra):
        code = random_code(k, dx, rng)
        mi, se, rows = category_mi(weights, cond, int(rng.integers(2**63)), self.stop_se)

        def sample(n, g):
            c = g.choice(k, size=n, p=weights)
            return code(c, g), cond.sample(c, g)

        params = {"k": k, "weights": weights.tolist(), **extra, **code.params()}
        params.update(mi_se=se, mi_rows=rows, mi_mc_estimate=mi)
        return Distribution(self.name, dx, dy, max(0.0, mi), params, sample)

    def _cat_gauss(self, dx, dy, rng):
        k = int(rng.integers(2, 9))
        weights = rng.dirichlet(np.full(k, 2.0))
        sep = float(rng.uniform(0.3, 4.0))
        means = rng.standard_normal((k, dy)) * sep / np.sqrt(dy)
        b = rng.normal(0.0, 0.5, size=(k, dy, 1))
        covs = np.stack([np.diag(rng.uniform(0.5, 1.5, size=dy)) for _ in range(k)]) + b @ b.transpose(0, 2, 1)
        return self._category_given(dx, dy, rng, GaussianGivenCategory(means, covs), k, weights, {"sep": sep})

    def _cat_poisson(self, dx, dy, rng):
        k = int(rng.integers(2, 9))
        weights = rng.dirichlet(np.full(k, 2.0))
        base = np.exp(rng.uniform(np.log(0.5), np.log(20.0), size=dy))
        spread = float(rng.uniform(0.2, 3.0))
        rates = base * np.exp(spread * rng.standard_normal((k, dy)) / np.sqrt(dy))
        cond = PoissonGivenCategory(rates)
        return self._category_given(dx, dy, rng, cond, k, weights, {"spread": spread, "rates": rates.tolist()})

    def _cat_cat(self, dx, dy, rng):
        kx, ky = (int(v) for v in rng.integers(2, 11, size=2))
        alpha = float(np.exp(rng.uniform(np.log(0.05), np.log(2.0))))
        pmf = rng.dirichlet(np.full(kx * ky, alpha)).reshape(kx, ky)
        cx, cy = random_code(kx, dx, rng), random_code(ky, dy, rng)
        flat = pmf.ravel()

        def sample(n, g):
            cell = g.choice(kx * ky, size=n, p=flat)
            return cx(cell // ky, g), cy(cell % ky, g)

        params = {"pmf": pmf.tolist(), "alpha": alpha, "x": cx.params(), "y": cy.params()}
        return Distribution(self.name, dx, dy, table_mi(pmf), params, sample)

    def _poisson_common(self, dx, dy, rng):
        m = int(rng.integers(1, min(dx, dy) + 1))
        la, lb = rng.uniform(0.1, 5.0, size=m), rng.uniform(0.1, 5.0, size=m)
        ls = rng.uniform(0.2, 10.0, size=m)
        noise_x, noise_y = rng.uniform(0.5, 10.0, size=dx - m), rng.uniform(0.5, 10.0, size=dy - m)
        parts = [poisson_common_mi(*r) for r in zip(la, lb, ls)]

        def sample(n, g):
            s = g.poisson(ls, size=(n, m))
            x = np.hstack([g.poisson(la, size=(n, m)) + s, g.poisson(noise_x, size=(n, dx - m))])
            y = np.hstack([g.poisson(lb, size=(n, m)) + s, g.poisson(noise_y, size=(n, dy - m))])
            return x.astype(float), y.astype(float)

        params = {
            "n_interacting": m,
            "rate_a": la.tolist(),
            "rate_b": lb.tolist(),
            "rate_common": ls.tolist(),
            "rate_noise_x": noise_x.tolist(),
            "rate_noise_y": noise_y.tolist(),
            "pair_mi": [p[0] for p in parts],
            "truncation_bound": float(sum(p[1] for p in parts)),
        }
        return Distribution(self.name, dx, dy, float(sum(p[0] for p in parts)), params, sample)


DISCRETE_FAMILIES = (
    DiscreteFamily("mixed-cat_gauss", "cat_gauss"),
    DiscreteFamily("mixed-cat_cat", "cat_cat"),
    DiscreteFamily("mixed-cat_poisson", "cat_poisson"),
    DiscreteFamily("mixed-poisson_common", "poisson_common"),
)
