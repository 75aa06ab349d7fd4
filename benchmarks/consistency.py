"""MINDE's self-consistency tests on real images (after Song and Ermon, 2020), for any estimator.

The data are scikit-learn's digits (1,797 8 x 8 images, shipped offline): A is an image,
dequantised to [0, 1) and mean-pooled `pool` x `pool`; B = A + N(0, noise^2), one draw per
image, and B_r is B's top r rows (the first r row widths of the row-major flattening), so B_r is
exactly columns of B_{r+k} and MI stays finite. From R = 8 / pool rows and n-row subsamples
(`reps` of them) come five kinds of datasets (x; y):

    independence  A; B_R with B's rows permuted         true MI 0
    baseline      A; B_r, r = 1..R                      rises with r
    processing    A; [B_{r+k}, B_r], r = 1..R-k         over baseline at r + k: ideally 1
    pair          [A1, A2]; [B1_r, B2_r], r = 1..R      over `single` at r: ideally 2
    single        A1; B1_r, r = 1..R

A1 and A2 are different images (the images are split into two disjoint halves, paired up), so
the pair's MI is the sum of two. Each ratio divides two estimates on the same rows of one rep.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from estimators.atomic import atomic_path
from estimators.units import per_nat

SIDE = 8  # the digits are 8 x 8
IDEAL = {"baseline": 1.0, "processing": 1.0, "additivity": 2.0}  # baseline: its value at r = R
# Independent random streams of one seed (np.random.default_rng([seed, stream, ...])).
DEQUANTISE, NOISE, HALVES, SUBSAMPLE = range(4)


# -- data ---------------------------------------------------------------------------------------
def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *key])


def dequantise(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Integer levels 0..16 to continuous values in [0, 1): (pixel + U(0, 1)) / 17."""
    return (pixels + rng.random(pixels.shape)) / 17.0


def pool_images(images: np.ndarray, pool: int) -> np.ndarray:
    """Mean over `pool` x `pool` blocks: (m, h, w) -> (m, h / pool, w / pool)."""
    m, h, w = images.shape
    return images.reshape(m, h // pool, pool, w // pool, pool).mean(axis=(2, 4))


def images(pool: int, seed: int) -> np.ndarray:
    """Every digit, dequantised and pooled, as rows of (SIDE / pool)^2 values, row-major."""
    from sklearn.datasets import load_digits

    pooled = pool_images(dequantise(load_digits().images, _rng(seed, DEQUANTISE)), pool)
    return pooled.reshape(len(pooled), -1)


def tasks(cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per dataset: kind, r (B's rows; for processing the smaller B), k, rep, n, dx, dy."""
    width = SIDE // int(cfg["pool"])
    d, rows, k = width * width, width, int(cfg["k"])
    n = int(cfg["n"])
    out = []

    def add(kind: str, r: int, rep: int, dx: int, dy_rows: int) -> None:
        out.append(dict(kind=kind, r=r, k=k if kind == "processing" else 0, rep=rep, n=n, dx=dx, dy=dy_rows * width))

    for rep in range(int(cfg["reps"])):
        add("independence", rows, rep, d, rows)
        for r in range(1, rows + 1):
            add("baseline", r, rep, d, r)
            add("pair", r, rep, 2 * d, 2 * r)
            add("single", r, rep, d, r)
        for r in range(1, rows - k + 1):
            add("processing", r, rep, d, 2 * r + k)
    return out


def build(cfg: Mapping[str, Any], path: str | Path) -> None:
    """The corpus as one .npz: the task table (JSON), the images `a` and their noisy copies `b`
    (one draw for all r), the row width, and per rep the subsampled rows, the independence
    permutation and the (A1, A2) image pairs. `dataset` slices every dataset from these."""
    seed, n = int(cfg.get("seed", 0)), int(cfg["n"])
    a = images(int(cfg["pool"]), seed)
    b = a + float(cfg["noise"]) * _rng(seed, NOISE).standard_normal(a.shape)
    order = _rng(seed, HALVES).permutation(len(a))
    half = len(a) // 2
    if n > half:
        raise ValueError(f"consistency.n = {n}: at most {half}, the pairs of two disjoint halves of the images")
    pairs = np.stack([order[:half], order[half : 2 * half]], axis=1)
    arrays: dict[str, np.ndarray] = {
        "tasks": np.array(pd.DataFrame(tasks(cfg)).to_json(orient="records")),
        "a": a,
        "b": b,
        "width": np.array(SIDE // int(cfg["pool"])),
    }
    for rep in range(int(cfg["reps"])):
        g = _rng(seed, SUBSAMPLE, rep)
        arrays[f"rows_{rep}"] = g.choice(len(a), n, replace=False)
        arrays[f"perm_{rep}"] = g.permutation(n)
        arrays[f"pairs_{rep}"] = pairs[g.choice(half, n, replace=False)]
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load(path: str | Path) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    with np.load(path) as z:
        corpus = {key: z[key] for key in z.files if key != "tasks"}
        table = pd.read_json(str(z["tasks"]), orient="records")
    return table, corpus


def dataset(corpus: Mapping[str, np.ndarray], task: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of one task row, sliced from the corpus arrays."""
    a, b, width = corpus["a"], corpus["b"], int(corpus["width"])
    kind, r, rep = task["kind"], int(task["r"]), int(task["rep"])

    def top(rows: np.ndarray, r: int) -> np.ndarray:  # B_r of those images
        return b[rows, : r * width]

    if kind in ("pair", "single"):
        first, second = corpus[f"pairs_{rep}"].T
        if kind == "single":
            return a[first], top(first, r)
        return np.hstack([a[first], a[second]]), np.hstack([top(first, r), top(second, r)])
    rows = corpus[f"rows_{rep}"]
    if kind == "independence":
        return a[rows], top(rows, r)[corpus[f"perm_{rep}"]]
    if kind == "baseline":
        return a[rows], top(rows, r)
    if kind == "processing":
        return a[rows], np.hstack([top(rows, r + int(task["k"])), top(rows, r)])
    raise ValueError(f"unknown consistency dataset kind {kind!r}")


# -- estimates ----------------------------------------------------------------------------------
def estimate(label: str, entry: Mapping[str, Any], path: str | Path) -> pd.DataFrame:
    """Every dataset's MI (nats) from the estimator `entry` ({"estimator", "params"}), labelled `label`.
    Estimators with a batch path (amortised or stacked per-dataset networks) get the datasets in
    chunks, as in the corpus runs; each chunk's time is shared evenly across its datasets."""
    from benchmarks.runner import BATCH
    from estimators import from_config

    est = from_config(entry)
    table, corpus = load(path)
    rows = table.to_dict("records")
    data = [dataset(corpus, t) for t in rows]
    if est.has_batch_path:
        outs = [e for i in range(0, len(data), BATCH) for e in est.estimate_batch(data[i : i + BATCH])]
    else:
        outs = [est.estimate(x, y) for x, y in data]
    return pd.DataFrame(
        [
            {
                **t,
                "method": label,
                "quantity": e.info.get("quantity", est.quantity(int(t["dx"]), int(t["dy"]))),
                "mi": e.mi,
                "ok": e.ok,
                "error": e.info.get("error", ""),
                "seconds": e.seconds,
            }
            for t, e in zip(rows, outs)
        ]
    )


# -- ratios and summary -------------------------------------------------------------------------
def ratios(est: pd.DataFrame) -> pd.DataFrame:
    """The three ratios per method, rep and r (columns method, test, r, rep, ratio), each of two
    estimates on the same rows; NaN where either estimate failed."""
    key = ["method", "rep"]
    est = est.assign(mi=est["mi"].where(est["ok"].astype(bool)))

    def kind(name: str) -> pd.DataFrame:
        return est.loc[est["kind"] == name, [*key, "r", "k", "mi"]]

    base = kind("baseline")
    full = base.loc[base["r"] == base["r"].max(), [*key, "mi"]]  # I(A; B_R)
    larger = base.rename(columns={"r": "r_den"})[[*key, "r_den", "mi"]]  # I(A; B_{r+k})
    parts = {
        "baseline": base.merge(full, on=key, suffixes=("", "_den")),
        "processing": kind("processing")
        .assign(r_den=lambda d: d["r"] + d["k"])
        .merge(larger, on=[*key, "r_den"], suffixes=("", "_den")),
        "additivity": kind("pair").merge(kind("single")[[*key, "r", "mi"]], on=[*key, "r"], suffixes=("", "_den")),
    }
    out = pd.concat([p.assign(test=t) for t, p in parts.items()], ignore_index=True)
    out["ratio"] = out["mi"] / out["mi_den"]
    return out[["method", "test", "r", "rep", "ratio"]].sort_values(["method", "test", "r", "rep"], ignore_index=True)


def _mean(s: pd.Series) -> float:
    return float(s.mean(skipna=False))  # a failed estimate leaves no mean to pass a test with


def verdict(value: float, limit: float, at_least: bool = False) -> str:
    """The word "pass" when value <= limit (>= with `at_least`); NaN (a failed estimate) fails."""
    return "pass" if (value >= limit if at_least else value <= limit) else "fail"


def _ratio_stats(rat: pd.DataFrame, ideal: float) -> dict[str, float]:
    """Mean ratio, its sd over reps (each rep's mean over r), and the worst |mean over reps - ideal| over r."""
    by_rep = rat.groupby("rep")["ratio"].agg(_mean)
    by_r = rat.groupby("r")["ratio"].agg(_mean)
    return dict(
        mean=_mean(rat["ratio"]),
        sd=float(by_rep.std(ddof=1)) if len(by_rep) > 1 else np.nan,
        worst=float(np.max(np.abs(by_r.to_numpy() - ideal))) if len(by_r) else np.nan,
    )


def _spearman(base: pd.DataFrame) -> float:
    """Spearman correlation of the mean I(A; B_r) over reps with r (1: it rises at every step)."""
    from scipy.stats import spearmanr

    means = base.groupby("r")["mi"].agg(_mean)
    if means.isna().any() or means.nunique() < 2:
        return np.nan
    return float(spearmanr(means.index, means.to_numpy())[0])


def summary(est: pd.DataFrame, cfg: Mapping[str, Any], unit: str = "nats") -> pd.DataFrame:
    """One row per method: the independence estimate (in `unit`), the baseline's Spearman with r,
    the processing and additivity ratios (mean, sd over reps, worst distance from the ideal over
    r), a pass/fail per test against the config's tolerances, failures and seconds."""
    est = est.assign(mi=est["mi"].where(est["ok"].astype(bool)))
    rat = ratios(est)
    rows = []
    for method, g in est.groupby("method", sort=False):
        r = rat[rat["method"] == method]
        indep = _mean(g.loc[g["kind"] == "independence", "mi"])
        rho = _spearman(g[g["kind"] == "baseline"])
        dp = _ratio_stats(r[r["test"] == "processing"], IDEAL["processing"])
        add = _ratio_stats(r[r["test"] == "additivity"], IDEAL["additivity"])
        verdicts = dict(
            indep=verdict(abs(indep), float(cfg["independence_tol"])),
            baseline=verdict(rho, float(cfg["min_spearman"]), at_least=True),
            dp=verdict(dp["worst"], float(cfg["dp_tol"])),
            add=verdict(add["worst"], float(cfg["add_tol"])),
        )
        rows.append(
            dict(
                method=method,
                quantity=", ".join(sorted(g["quantity"].unique())),
                failed=int((~g["ok"].astype(bool)).sum()),
                indep_mi=indep * per_nat(unit),
                indep=verdicts["indep"],
                baseline_spearman=rho,
                baseline=verdicts["baseline"],
                dp_mean=dp["mean"],
                dp_sd=dp["sd"],
                dp_worst=dp["worst"],
                dp=verdicts["dp"],
                add_mean=add["mean"],
                add_sd=add["sd"],
                add_worst=add["worst"],
                add=verdicts["add"],
                passed=f"{sum(v == 'pass' for v in verdicts.values())}/{len(verdicts)}",
                median_seconds=float(g["seconds"].median()),
                total_seconds=float(g["seconds"].sum()),
            )
        )
    return pd.DataFrame(rows)


def plot(rat: pd.DataFrame, stem: str | Path) -> None:
    """One panel per ratio against r, one line per method (mean, band: sd over reps), the ideal dashed."""
    import seaborn as sns

    from benchmarks.plots import _save

    g = sns.relplot(
        data=rat,
        x="r",
        y="ratio",
        hue="method",
        style="method",
        col="test",
        col_order=list(IDEAL),
        kind="line",
        markers=True,
        dashes=False,
        errorbar="sd",
        height=3,
        aspect=1.1,
        facet_kws={"sharex": False, "sharey": False},
    )
    for test, ax in g.axes_dict.items():
        ax.axhline(IDEAL[test], ls="--", c="grey", lw=1)
        ax.set_xticks(sorted(rat.loc[rat["test"] == test, "r"].unique()))
    g.set_titles("{col_name}")
    g.set_axis_labels("r (rows of B)", "ratio")
    _save(g.figure, stem)
