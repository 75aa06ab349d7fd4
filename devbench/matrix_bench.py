"""The MI matrix of many variables: wall time and accuracy on a Gaussian graphical model.

    python -m devbench.matrix_bench                     # 100 variables, n = 1,000
    python -m devbench.matrix_bench --p 20 --n 300      # a quick look

The data: p variables from a Gaussian graphical model (a sparse linear structural model, scaled to
unit variances), so every pairwise MI is known exactly, -1/2 log(1 - rho_ij^2); most pairs are
dependent only through others (small but non-zero MI).
Each method computes all p (p - 1) / 2 pairwise MIs:
- `estimators.mi_matrix` with MIST (one batched call), MIST_QR and our KSG (k = 3 and 5);
- scikit-learn's `mutual_info_regression` (KSG with k = 3, max-norm, and a little noise added),
  called once per column j on the columns after j, so that each pair is computed once.
Reported: wall seconds (and the ratio to KSG's, taken in the same run), MAE and RMSE over the pairs,
the Spearman correlation with the truth, and the share of the p strongest true pairs found among
each method's p strongest.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy.stats import spearmanr


def graphical_model(p: int, seed: int) -> np.ndarray:
    """Correlation matrix of a Gaussian graphical model from a sparse linear structural model:
    x_i = sum_j B_ij x_j + e_i over the parents j < i (the previous variable, and another earlier
    one with probability 1/2), weights of either sign with |B_ij| in [0.4, 0.9]. The graphical model
    (the precision matrix's support) is the moral graph; pairs far apart are dependent only weakly."""
    rng = np.random.default_rng(seed)
    b = np.zeros((p, p))
    for i in range(1, p):
        parents = {i - 1} | ({int(rng.integers(0, i))} if rng.random() < 0.5 else set())
        for j in parents:
            b[i, j] = rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 0.9)
    a = np.linalg.inv(np.eye(p) - b)
    cov = a @ a.T
    sd = np.sqrt(np.diag(cov))
    return cov / np.outer(sd, sd)


def pairwise_mi(corr: np.ndarray) -> np.ndarray:
    r2 = np.minimum(corr**2, 1 - 1e-15)
    out = -0.5 * np.log1p(-r2)
    np.fill_diagonal(out, np.nan)
    return out


def sklearn_matrix(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.feature_selection import mutual_info_regression

    p = x.shape[1]
    out = np.full((p, p), np.nan)
    for j in range(p - 1):
        mi = mutual_info_regression(x[:, j + 1 :], x[:, j], n_neighbors=3, random_state=seed)
        out[j, j + 1 :] = out[j + 1 :, j] = mi
    return out


def score(est: np.ndarray, truth: np.ndarray, top: int) -> dict[str, float]:
    iu = np.triu_indices_from(truth, 1)
    e, t = est[iu], truth[iu]
    ok = np.isfinite(e)
    found = set(np.argsort(-np.where(ok, e, -np.inf))[:top]) & set(np.argsort(-t)[:top])
    return {
        "mae": float(np.abs(e[ok] - t[ok]).mean()),
        "rmse": float(np.sqrt(((e[ok] - t[ok]) ** 2).mean())),
        "spearman": float(spearmanr(e[ok], t[ok]).statistic),
        f"top{top}_recall": len(found) / top,
        "failed": int((~ok).sum()),
    }


def run(p: int, n: int, seed: int, methods: list[str]) -> pd.DataFrame:
    import estimators

    corr = graphical_model(p, seed)
    truth = pairwise_mi(corr)
    x = np.random.default_rng(seed + 1).multivariate_normal(np.zeros(p), corr, size=n)
    rows = []
    for m in methods:
        if m == "sklearn":
            t0 = time.perf_counter()
            est = sklearn_matrix(x, seed)
        else:
            name, _, k = m.partition(":")
            e = estimators.get(name, **({"k": int(k)} if k else {}))  # loading weights is not timed
            t0 = time.perf_counter()
            est = estimators.mi_matrix(x, e)
        rows.append({"method": m, "seconds": time.perf_counter() - t0, **score(est, truth, top=p)})
    df = pd.DataFrame(rows)
    if "ksg:5" in set(df["method"]):
        df["seconds_vs_ksg5"] = df["seconds"] / float(df.loc[df["method"] == "ksg:5", "seconds"].iloc[0])
    iu = np.triu_indices(p, 1)
    df.attrs.update(pairs=len(iu[0]), true_mi_mean=float(truth[iu].mean()), true_mi_max=float(truth[iu].max()))
    return df


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devbench.matrix_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--p", type=int, default=100, help="variables")
    ap.add_argument("--n", type=int, default=1000, help="rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default="mist,mist_qr,ksg:5,ksg:3,sklearn")
    args = ap.parse_args(argv)
    df = run(args.p, args.n, args.seed, args.methods.split(","))
    a = df.attrs
    print(
        f"p = {args.p} variables ({a['pairs']} pairs), n = {args.n}; true pairwise MI: mean {a['true_mi_mean']:.4f}, "
        f"max {a['true_mi_max']:.3f} nats"
    )
    print(df.to_markdown(index=False, floatfmt=".4g"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
