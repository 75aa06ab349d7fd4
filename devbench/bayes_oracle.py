"""The Bayes posterior mean of MI under the meta-dataset's own prior: a floor for amortised estimators.

MIST, trained with an MSE loss on datasets from the training families, approximates E[MI | data]
under that meta-prior. For the benchmark's parametric families the posterior can be computed
directly: draw M parameter sets per family from the prior (the families' own draws at the data's
dx, dy), weight each by the likelihood of the data, and average the MIs (self-normalised
importance sampling from the prior; `ess` is its effective sample size). The family is not known:
every training family is a mixture component with its prior weight.

Two likelihoods:
- `raw`: the family's density of the observed values, i.e. the base density (Gaussian, Student-t,
  additive uniform noise) of the inverse-transformed values times the Jacobian; the transforms
  are BMI's fixed maps. This is the exact posterior up to Monte Carlo error: the estimator an
  MSE-trained MIST approximates, and, in expectation over data drawn from the training mixture,
  the lowest MSE any estimator can reach. (On the IMD split, six of the sixteen training
  families, it is the same posterior with the other ten still in the prior.)
- `ranks`: the Gaussian or t copula pseudo-likelihood of the pseudo-observations rank / (n + 1)
  (Genest, Ghoudi and Rivest, 1995): what the ranks alone carry, which is what a copula-normalised
  estimator sees. It is an approximation (the exact rank likelihood integrates over the values),
  and it leaves out families without a tractable copula (additive noise).

Both know BMI's coordinate alignment (coupled pairs are x_i, y_i with i < k), which an estimator
invariant to permutations of the columns cannot use. Importance sampling from the prior only
works while the likelihood is broad: this is a small-n reference (n <= 40 or so), with `ess`
reported so a collapsed posterior is visible.

    python -m devbench.bayes_oracle --n 10 --count 180 --draws 3000
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import sys

import numpy as np
import pandas as pd
from scipy.special import gammaln, ndtri
from scipy.stats import rankdata
from scipy.stats import t as student_t

from estimators.synthetic import families as F
from estimators.synthetic import transforms as T

# ---------------------------------------------------------------------------
# Inverse transforms with the log-derivative of the inverse (the Jacobian, per value).


def _d_wiggly_x(a: np.ndarray) -> np.ndarray:
    return 1 + 0.4 * np.cos(a) + 0.34 * np.cos(1.7 * a + 1) + 0.099 * np.cos(3.3 * a - 2.5)


def _d_wiggly_y(a: np.ndarray) -> np.ndarray:
    return 1 - 0.16 * np.cos(0.4 * a) + 0.221 * np.cos(1.3 * a + 3.5) + 0.086 * np.cos(4.3 * a - 2.5)


def _invert_increasing(f, a: np.ndarray, reach: float) -> np.ndarray:
    """b with f(b) = a for an increasing f with |f(b) - b| <= reach: bisection from [a - reach, a + reach]."""
    lo, hi = a - reach, a + reach
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        up = f(mid) > a
        hi, lo = np.where(up, mid, hi), np.where(up, lo, mid)
    return 0.5 * (lo + hi)


def inverse_transform(name: str, a: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    """(b, log |db/da|) elementwise for the family transform `name` applied to the x or y `side`."""
    if name == "base":
        return a, np.zeros_like(a)
    if name == "halfcube":  # a = b |b|^(1/2)
        mag = np.abs(a)
        with np.errstate(divide="ignore"):
            return np.sign(a) * mag ** (2 / 3), np.log(2 / 3) - np.log(mag) / 3
    if name == "asinh":
        return np.sinh(a), np.log(np.cosh(a))
    if name == "wigglify":
        f, df = (T.wiggly_x, _d_wiggly_x) if side == "x" else (T.wiggly_y, _d_wiggly_y)
        b = _invert_increasing(f, a, reach=0.7)  # |wiggly(b) - b| <= 0.63
        return b, -np.log(df(b))
    raise ValueError(f"no inverse for transform {name!r}")


# ---------------------------------------------------------------------------
# Prior banks: M parameter draws of one base-structure class at (dx, dy).


@dataclasses.dataclass
class Bank:
    base: str
    structure: str | None
    mi: np.ndarray  # (M,)
    prec: np.ndarray | None = None  # (M, D, D) inverse covariance / dispersion
    logdet: np.ndarray | None = None
    df: np.ndarray | None = None  # (M,) Student-t degrees of freedom
    eps: np.ndarray | None = None  # (M, d) additive-noise half-widths


def draw_bank(base: str, structure: str | None, dx: int, dy: int, draws: int, rng: np.random.Generator) -> Bank:
    """`draws` parameter sets of a base-structure class from the families' own prior."""
    mis, params = [], []
    for _ in range(draws):
        mi, p, sampler = F.BASES[base](structure, dx, dy, rng)
        mis.append(mi)
        params.append(sampler if isinstance(sampler, F.GaussianSampler) else p)
    if base == "multi_additive_noise":
        return Bank(base, structure, np.array(mis), eps=np.array([p["epsilon"] for p in params]))
    chol = np.array([s.chol for s in params])
    inv = np.linalg.inv(chol)
    return Bank(
        base,
        structure,
        np.array(mis),
        prec=np.einsum("mki,mkj->mij", inv, inv),
        logdet=2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(1),
        df=np.array([np.nan if s.df is None else s.df for s in params]),
    )


def _student_logpdf(z: np.ndarray, bank: Bank) -> np.ndarray:
    """Sum over rows of the multivariate t log-density for every draw: (M,). z is (n, D) or (M, n, D)."""
    n, D = z.shape[-2:]
    nu = bank.df
    zz = z if z.ndim == 3 else z[None]
    quad = (np.matmul(zz, bank.prec) * zz).sum(-1)  # (M, n): one batched BLAS product
    norm = gammaln((nu + D) / 2) - gammaln(nu / 2) - D / 2 * np.log(nu * np.pi) - 0.5 * bank.logdet
    return n * norm - (nu + D) / 2 * np.log1p(quad / nu[:, None]).sum(1)


def _gauss_quad(z: np.ndarray, bank: Bank) -> np.ndarray:
    """Sum over rows of z' P z for every draw, from the scatter matrix."""
    return np.einsum("mde,de->m", bank.prec, z.T @ z)


def _base_values(x: np.ndarray, y: np.ndarray, transform: str) -> tuple[np.ndarray, np.ndarray, float]:
    """The untransformed x, y under `transform` and the log-Jacobian summed over every value."""
    bx, jx = inverse_transform(transform, x, "x")
    by, jy = inverse_transform(transform, y, "y")
    return bx, by, float(jx.sum() + jy.sum())


def raw_loglik(x: np.ndarray, y: np.ndarray, transform: str, bank: Bank) -> np.ndarray:
    """log p(x, y | draw) for every draw of `bank` under `transform`: (M,)."""
    return _raw_loglik(*_base_values(x, y, transform), bank)


def _raw_loglik(bx: np.ndarray, by: np.ndarray, jac: float, bank: Bank) -> np.ndarray:
    if not np.isfinite(jac):
        return np.full(len(bank.mi), -np.inf)
    n = bx.shape[0]
    if bank.base == "multi_additive_noise":  # X_j ~ U(0, 1), Y_j = X_j + U(-eps_j, eps_j)
        inside = (bx >= 0).all() and (bx <= 1).all()
        gap = np.abs(by - bx).max(0)  # (d,)
        ok = inside & (gap[None, :] < bank.eps).all(1)
        return np.where(ok, -n * np.log(2 * bank.eps).sum(1), -np.inf) + jac
    z = np.c_[bx, by]
    D = z.shape[1]
    if np.isnan(bank.df[0]):
        return -0.5 * n * bank.logdet - 0.5 * _gauss_quad(z, bank) - 0.5 * n * D * np.log(2 * np.pi) + jac
    return _student_logpdf(z, bank) + jac


def _pseudo_observations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """rank / (n + 1) per column of [x | y], ties averaged."""
    return np.c_[rankdata(x, axis=0), rankdata(y, axis=0)] / (x.shape[0] + 1)


def rank_loglik(x: np.ndarray, y: np.ndarray, bank: Bank) -> np.ndarray:
    """Copula pseudo-log-likelihood of the pseudo-observations rank / (n + 1) for every draw: (M,)."""
    return _rank_loglik(_pseudo_observations(x, y), bank)


def _rank_loglik(u: np.ndarray, bank: Bank) -> np.ndarray:
    n = u.shape[0]
    if np.isnan(bank.df[0]):  # Gaussian copula: log phi_R(z) - sum log phi(z_j), z = Phi^-1(u)
        z = ndtri(u)
        return -0.5 * n * bank.logdet - 0.5 * _gauss_quad(z, bank) + 0.5 * float((z * z).sum())
    nu = bank.df
    # t scores per draw: the t_nu quantile of each pseudo-observation. There are at most n distinct
    # ones (ranks 1..n, ties averaged), so the quantile function runs on those and is gathered.
    levels, where = np.unique(u, return_inverse=True)
    q = student_t.ppf(levels[None], nu[:, None])[:, where.reshape(u.shape)]  # (M, n, D)
    marg = n * u.shape[1] * (gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * np.log(nu * np.pi)) - (
        nu + 1
    ) / 2 * np.log1p(q * q / nu[:, None, None]).sum((1, 2))
    return _student_logpdf(q, bank) - marg


# ---------------------------------------------------------------------------
# The posterior over the mixture of families.


def family_classes(family_names) -> dict[tuple[str, str | None], list]:
    """Training families (`Family` objects) grouped by base-structure class: their transforms share a bank."""
    out: dict[tuple[str, str | None], list] = collections.defaultdict(list)
    for name in family_names:
        fam = F.get_family(name)
        if getattr(fam, "base", None) not in F.BASES:
            raise ValueError(f"family {name}: no likelihood for its base")
        out[(fam.base, fam.structure)].append(fam)
    return dict(out)


def draw_banks(family_names, dx: int, dy: int, draws: int, seed: int) -> dict:
    """One bank per base-structure class at (dx, dy); a class undefined at these dims is left out."""
    banks = {}
    for i, (key, fams) in enumerate(sorted(family_classes(family_names).items(), key=lambda kv: str(kv[0]))):
        base, structure = key
        if min(dx, dy) < F.min_dim_of(fams[0]) or (base == "multi_additive_noise" and dx != dy):
            continue
        banks[key] = draw_bank(base, structure, dx, dy, draws, np.random.default_rng([seed, dx, dy, i]))
    return banks


def aligned_columns(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and y with their columns reordered by a maximum matching of the squared rank correlations
    (Hungarian), strongest matched pair first, unmatched columns last (in their order of strength).

    BMI's families couple x_i with y_i for the first i; an estimator that must not depend on the
    order of the columns can only recover that alignment from the data, which this does. The result
    depends on the columns' values, not their order (up to exact ties)."""
    from scipy.optimize import linear_sum_assignment

    z = ndtri(_pseudo_observations(x, y))
    r2 = np.corrcoef(z.T)[: x.shape[1], x.shape[1] :] ** 2
    rows, cols = linear_sum_assignment(r2, maximize=True)
    order = np.argsort(-r2[rows, cols], kind="stable")
    rows, cols = rows[order], cols[order]
    rest_x = [i for i in np.argsort(-r2.max(1), kind="stable") if i not in set(rows)]
    rest_y = [j for j in np.argsort(-r2.max(0), kind="stable") if j not in set(cols)]
    return x[:, [*rows, *rest_x]], y[:, [*cols, *rest_y]]


def posterior_mean(
    x: np.ndarray, y: np.ndarray, family_names, banks: dict, mode: str = "raw", align: bool = False
) -> tuple[float, float]:
    """(E[MI | x, y], effective sample size) with every family of `family_names` equally likely a priori.
    With `align`, the columns are first put in the order `aligned_columns` finds, which makes the
    result invariant to permutations of the columns of x and of y."""
    if mode not in ("raw", "ranks"):
        raise ValueError(f"mode must be 'raw' or 'ranks', got {mode!r}")
    if align:
        x, y = aligned_columns(x, y)
    classes = family_classes(family_names)
    # Each transform's inverse (a bisection for wigglify) and the ranks are computed once per dataset,
    # not once per family class that uses them.
    base_values = (
        {tr: _base_values(x, y, tr) for tr in {f.transform for fams in classes.values() for f in fams}}
        if mode == "raw"
        else {}
    )
    u = _pseudo_observations(x, y) if mode == "ranks" else None
    logw, mis = [], []
    for key, fams in classes.items():
        bank = banks.get(key)
        if bank is None:
            continue
        prior = -np.log(len(family_names)) - np.log(len(bank.mi))
        if mode == "raw":
            for fam in fams:
                logw.append(prior + _raw_loglik(*base_values[fam.transform], bank))
                mis.append(bank.mi)
        elif bank.base != "multi_additive_noise":  # ranks: no tractable copula for additive noise
            # every transform of a class has the same copula: one term, weighted by their number
            logw.append(prior + np.log(len(fams)) + _rank_loglik(u, bank))
            mis.append(bank.mi)
    lw, mi = np.concatenate(logw), np.concatenate(mis)
    if not np.isfinite(lw.max()):
        raise ValueError("no prior draw gives these data a positive likelihood")
    w = np.exp(lw - lw.max())
    w /= w.sum()
    return float(w @ mi), float(1.0 / (w @ w))


def evaluate(
    n: int,
    count: int,
    draws: int,
    seed: int,
    estimator_names=("mist", "mist_qr"),
    modes=("raw", "ranks", "ranks_aligned"),
) -> pd.DataFrame:
    """Posterior means and estimator predictions on `count` IMD validation-style datasets at n rows
    (d in [2, 32], dx = dy, one family drawn uniformly per dataset)."""
    import estimators
    from estimators.synthetic import metadataset as md

    spec = md.full_spec({"d": [2, 32], "p_unequal": 0.0})
    rng = np.random.default_rng([seed, n])
    items = [md.draw_dataset(spec, md.val_families(spec), n, rng) for _ in range(count)]
    df = pd.DataFrame(
        {"family": [d["family"] for d in items], "d": [d["dx"] for d in items], "truth": [d["mi"] for d in items]}
    )
    data = [(d["x"], d["y"]) for d in items]
    for name in estimator_names:
        df[name] = [e.mi for e in estimators.get(name).estimate_batch(data)]
    train = md.train_families(spec)
    for mode in modes:
        df[f"bayes_{mode}"] = np.nan
        df[f"ess_{mode}"] = np.nan
    for d, idx in df.groupby("d").groups.items():
        banks = draw_banks(train, int(d), int(d), draws, seed)
        for i in idx:
            for mode in modes:
                kind, _, how = mode.partition("_")
                df.loc[i, [f"bayes_{mode}", f"ess_{mode}"]] = posterior_mean(
                    *data[i], train, banks, kind, align=how == "aligned"
                )
    return df


def report(df: pd.DataFrame) -> str:
    cols = [c for c in df.columns if c not in ("family", "d", "truth") and not c.startswith("ess_")]
    se = pd.DataFrame({c: (df[c] - df.truth) ** 2 for c in cols})
    se["family"] = df.family
    by_family = se.groupby("family").mean()
    ess = df.filter(like="ess_").median().round(1).to_dict()
    return (
        f"MSE over {len(df)} datasets (median ESS {ess}):\n{se[cols].mean().round(3).to_string()}\n\n"
        f"MSE by family:\n{by_family.round(3).to_string()}"
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--count", type=int, default=180)
    ap.add_argument("--draws", type=int, default=3000, help="prior draws per family class and d")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--estimators", nargs="*", default=["mist", "mist_qr"])
    ap.add_argument(
        "--modes",
        nargs="+",
        default=["raw", "ranks", "ranks_aligned"],
        help="raw, ranks, and either with _aligned (columns aligned from the data first)",
    )
    ap.add_argument("--csv", help="write the per-dataset table here")
    a = ap.parse_args(argv)
    df = evaluate(a.n, a.count, a.draws, a.seed, tuple(a.estimators), tuple(a.modes))
    if a.csv:
        df.to_csv(a.csv, index=False)
    print(report(df))


if __name__ == "__main__":
    sys.exit(main())
