"""The independence-testing benchmark: type-I error on independent data, power on dependent data.

Every method is a permutation test at level `alpha`:
- MI estimators (MIST, MIST_QR, KSG, InfoNet, the Gaussian reference) through
  `estimators.independence_test`, their unclipped MI as the statistic;
- the kernel and distance tests of `hyppo` (HSIC with a Gaussian kernel, distance correlation),
  the maintained independence-testing library, with the same number of permutations.

Datasets are drawn here from a seed per (study, family, n, d, strength, repetition), so every
method sees the same data. Null families keep x and y independent with awkward marginals:
Gaussian with correlated columns, multivariate Student-t with df 1-3 (heavy tails, shared scale
within a block), categorical columns, Gaussian mixtures. Alternatives rise in strength from 0
(independent) to 1: linear, non-monotone (parabola, sine, an X-shaped mixture with zero
correlation) and weak dependence spread over ten coordinate pairs.

    python -m benchmarks.independence --config config/independence_study.yaml --out DIR
runs a whole study outside the DAG, with the shipped weights (the DAG's rules call the same
functions with its own weights).
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import beta as beta_dist

NULL_FAMILIES = ("gaussian", "student", "discrete", "mixture")
ALTERNATIVES = ("linear", "parabola", "sine", "x_mixture", "spread")
LIBRARY_TESTS = ("hsic", "dcorr")  # hyppo's tests, beside the MI estimators
SPREAD_D = 10  # coordinate pairs of the `spread` alternative
# Strength 1 of each alternative: its coupling at strength 1 (chosen so that at n = 200 the curves
# run from no power to full power for the better tests; the study's config picks the strengths).
MAX_COUPLING = {"linear": 0.35, "parabola": 0.6, "sine": 0.7, "x_mixture": 0.8, "spread": 0.25}


# -- data ---------------------------------------------------------------------------------------
def _correlated_normal(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """n rows of N(0, C), C a random correlation matrix (columns within a block depend)."""
    a = rng.normal(size=(d, d)) / np.sqrt(d)
    cov = a @ a.T + 0.5 * np.eye(d)
    sd = np.sqrt(np.diag(cov))
    return rng.normal(size=(n, d)) @ np.linalg.cholesky(cov / np.outer(sd, sd)).T


def _block(family: str, n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """One block (x or y) of a null family."""
    if family == "gaussian":
        return _correlated_normal(n, d, rng)
    if family == "student":  # multivariate t: one chi-square scale per row, shared by the block
        df = float(rng.integers(1, 4))
        return _correlated_normal(n, d, rng) / np.sqrt(rng.chisquare(df, size=(n, 1)) / df)
    if family == "discrete":  # categorical columns, 2-5 levels with uneven frequencies
        cols = []
        for _ in range(d):
            levels = int(rng.integers(2, 6))
            cols.append(rng.choice(levels, size=n, p=rng.dirichlet(np.full(levels, 2.0))))
        return np.column_stack(cols).astype(np.float64)
    if family == "mixture":  # 2-4 well separated Gaussian components
        k = int(rng.integers(2, 5))
        means = rng.normal(scale=3.0, size=(k, d))
        return means[rng.integers(0, k, size=n)] + rng.normal(size=(n, d))
    raise ValueError(f"unknown null family {family!r}; known: {NULL_FAMILIES}")


def null_dataset(family: str, n: int, dx: int, dy: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return _block(family, n, dx, rng), _block(family, n, dy, rng)


def alternative_dataset(family: str, strength: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of an alternative at `strength` in [0, 1]; strength 0 is independence."""
    if family not in MAX_COUPLING:
        raise ValueError(f"unknown alternative {family!r}; known: {ALTERNATIVES}")
    rng = np.random.default_rng(seed)
    c = float(strength) * MAX_COUPLING[family]
    if family == "spread":  # every one of SPREAD_D pairs correlated at c: weak, spread out
        x = rng.normal(size=(n, SPREAD_D))
        return x, c * x + np.sqrt(1 - c * c) * rng.normal(size=(n, SPREAD_D))
    x = rng.normal(size=(n, 1))
    e = rng.normal(size=(n, 1))
    if family == "linear":
        return x, c * x + np.sqrt(1 - c * c) * e
    if family == "parabola":  # zero correlation: x^2 - 1 is uncorrelated with x
        return x, c * (x * x - 1) / np.sqrt(2) + e
    if family == "sine":
        return x, c * np.sqrt(2) * np.sin(3 * x) + e
    # x_mixture: half the rows correlated +c, half -c; zero correlation overall
    sign = np.where(rng.random((n, 1)) < 0.5, 1.0, -1.0)
    return x, sign * c * x + np.sqrt(1 - c * c) * e


def _seed(base: int, *key: Any) -> int:
    """A dataset's seed from the study's and the dataset's key (stable across runs and methods)."""
    return int(np.random.SeedSequence([base, *(hash_str(str(k)) for k in key)]).generate_state(1)[0])


def hash_str(s: str) -> int:
    """A stable 32-bit hash of a string (Python's `hash` is salted per process)."""
    h = 2166136261
    for ch in s.encode():
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    return h


def plan(cfg: Mapping[str, Any], method: str | None = None) -> list[dict[str, Any]]:
    """The tests of a study: one row per dataset, null then power.

    cfg: seed, size {families, n, d, reps} (independent data: every (n, d) with 4 d <= n, dx = dy = d),
    power {families, n, strengths, reps}. (Not `null:`, which YAML reads as a None key.)
    `size.reps_by_method` gives a slow method fewer repetitions: the first ones, so that its
    datasets are a subset of the others'."""
    rows = []
    base = int(cfg.get("seed", 0))
    size = cfg.get("size") or {}
    for family in size.get("families", ()):
        for n in size["n"]:
            for d in size["d"]:
                if 4 * d > n:  # too few rows for the Gaussian reference's covariance (n > dx + dy)
                    continue
                for rep in range(int((size.get("reps_by_method") or {}).get(method, size["reps"]))):
                    seed = _seed(base, "size", family, n, d, rep)
                    rows.append(dict(study="size", family=family, n=n, dx=d, dy=d, strength=0.0, rep=rep, seed=seed))
    power = cfg.get("power") or {}
    for family in power.get("families", ()):
        d = SPREAD_D if family == "spread" else 1
        for s in power["strengths"]:
            for rep in range(int(power["reps"])):
                seed = _seed(base, "power", family, power["n"], s, rep)
                rows.append(
                    dict(study="power", family=family, n=power["n"], dx=d, dy=d, strength=float(s), rep=rep, seed=seed)
                )
    return rows


def dataset(row: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    if row["study"] == "size":
        return null_dataset(row["family"], row["n"], row["dx"], row["dy"], row["seed"])
    return alternative_dataset(row["family"], row["strength"], row["n"], row["seed"])


# -- tests --------------------------------------------------------------------------------------
def library_test(name: str) -> Callable[[np.ndarray, np.ndarray, int, int], tuple[float, float]]:
    """hyppo's permutation test `name` ("hsic" | "dcorr") as f(x, y, permutations, seed) -> (stat, p)."""
    from hyppo.independence import Dcorr, Hsic

    cls = {"hsic": Hsic, "dcorr": Dcorr}[name]

    def run(x: np.ndarray, y: np.ndarray, permutations: int, seed: int) -> tuple[float, float]:
        # hyppo 0.5.1's Hsic.test drops `random_state` and permutes with numpy's global RNG:
        # seed that too (and put it back), or HSIC's p-values change from run to run.
        state = np.random.get_state()
        np.random.seed(seed)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # hyppo warns below 1,000 permutations
                stat, p = cls().test(x, y, reps=permutations, auto=False, random_state=seed)[:2]
        finally:
            np.random.set_state(state)
        return float(stat), float(p)

    return run


def method_runner(method: str, entry: Mapping[str, Any] | None):
    """f(x, y, permutations, seed) -> (statistic, p-value) for a method: a hyppo test, or an MI
    estimator built once from its config entry {"estimator": name, "params": {...}}."""
    if method in LIBRARY_TESTS:
        return library_test(method)
    from estimators.independence import independence_test, statistic_estimator

    est = statistic_estimator(entry["estimator"], entry.get("params") or {})

    def run(x: np.ndarray, y: np.ndarray, permutations: int, seed: int) -> tuple[float, float]:
        res = independence_test(x, y, est, permutations=permutations, seed=seed)
        return res.statistic, res.p_value

    return run


def run_method(
    method: str,
    entry: Mapping[str, Any] | None,
    rows: Iterable[Mapping[str, Any]],
    permutations: Mapping[str, int],
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """One row per test: the plan's keys, statistic, p_value, seconds. `permutations` per study;
    `progress(k)` is called after every 100th test."""
    run = method_runner(method, entry)
    out = []
    for row in rows:
        if progress is not None and out and len(out) % 100 == 0:
            progress(len(out))
        x, y = dataset(row)
        t0 = time.perf_counter()
        stat, p = run(x, y, int(permutations[row["study"]]), int(row["seed"]) % (2**31))
        out.append({**row, "method": method, "statistic": stat, "p_value": p, "seconds": time.perf_counter() - t0})
    return pd.DataFrame(out)


# -- summaries ----------------------------------------------------------------------------------
def _clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta_dist.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta_dist.ppf(1 - a, k + 1, n - k))
    return lo, hi


def type1_table(df: pd.DataFrame, alpha: float, band: tuple[float, float]) -> pd.DataFrame:
    """Per method and null family (and all families): tests, rejections at `alpha`, the rate with
    its 95% Clopper-Pearson interval, and whether the rate lies in `band`. A failed test (NaN p)
    is counted apart, never as an acceptance."""
    null = df[df["study"] == "size"]
    rows = []
    for (method, family), g in [*null.groupby(["method", "family"]), *((k, g) for k, g in _all_families(null))]:
        ok = g["p_value"].notna()
        k, n = int((g.loc[ok, "p_value"] <= alpha).sum()), int(ok.sum())
        lo, hi = _clopper_pearson(k, n) if n else (np.nan, np.nan)
        rate = k / n if n else np.nan
        rows.append(
            dict(
                method=method,
                family=family,
                tests=n,
                failed=int((~ok).sum()),
                rejections=k,
                type1=rate,
                ci_low=lo,
                ci_high=hi,
                in_band=bool(band[0] <= rate <= band[1]) if n else False,
            )
        )
    return pd.DataFrame(rows).sort_values(["method", "family"], kind="stable").reset_index(drop=True)


def _all_families(null: pd.DataFrame):
    for method, g in null.groupby("method"):
        yield (method, "all"), g


def power_table(df: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Rejection rate at `alpha` per method, alternative and strength (strength 0: the size)."""
    alt = df[df["study"] == "power"]
    agg = (
        alt.assign(reject=lambda d: d["p_value"] <= alpha, failed=lambda d: d["p_value"].isna())
        .groupby(["family", "strength", "method"], as_index=False)
        .agg(tests=("reject", "size"), power=("reject", "mean"), failed=("failed", "sum"))
    )
    return agg


def power_wide(power: pd.DataFrame) -> pd.DataFrame:
    """The power table with one column per method (rows: alternative, strength)."""
    return power.pivot_table(index=["family", "strength"], columns="method", values="power").reset_index()


def seconds_table(df: pd.DataFrame) -> pd.DataFrame:
    """Median and total seconds per test, per method and study."""
    return df.groupby(["method", "study"], as_index=False).agg(
        tests=("seconds", "size"), median_seconds=("seconds", "median"), total_seconds=("seconds", "sum")
    )


def write_outputs(df: pd.DataFrame, cfg: Mapping[str, Any], out: str | Path, plots: str | Path | None = None) -> None:
    """Tables (markdown, CSV, LaTeX) in `out` and the power-curve plot in `plots` (default: `out`)."""
    from benchmarks.plots import power_curves
    from benchmarks.tables import write_table

    out = Path(out)
    plots = Path(plots) if plots is not None else out
    for d in (out, plots):
        d.mkdir(parents=True, exist_ok=True)
    alpha = float(cfg.get("alpha", 0.05))
    band = tuple(cfg.get("type1_band", (0.035, 0.065)))
    perms = cfg["permutations"]
    if (df["study"] == "size").any():
        write_table(
            type1_table(df, alpha, band),
            out / "independence_type1",
            f"Type-I error at alpha = {alpha} on independent data ({perms['size']} permutations per test); "
            f"95% Clopper-Pearson intervals; in_band: the rate lies in {list(band)}.",
        )
    if (df["study"] == "power").any():
        power = power_table(df, alpha)
        write_table(
            power_wide(power),
            out / "independence_power",
            f"Power at alpha = {alpha} ({perms['power']} permutations per test, n = {cfg['power']['n']}); "
            "strength 0 is independence.",
        )
        power_curves(power, plots / "power_curves")
    write_table(seconds_table(df), out / "independence_seconds", "Seconds per permutation test.")


def _planned(df: pd.DataFrame, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The tests of `df` that the plan holds: a kept CSV from a run with more repetitions
    contributes the planned ones only, the same datasets as every other method's."""
    key = ["study", "family", "n", "dx", "strength", "rep"]
    return df.merge(pd.DataFrame(rows)[key].drop_duplicates(), on=key, how="inner")


def main(argv: list[str] | None = None) -> int:
    import yaml

    ap = argparse.ArgumentParser(prog="python -m benchmarks.independence", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--config", required=True, type=Path, help="YAML with `independence:` and `estimators:` (as config/config.yaml)"
    )
    ap.add_argument("--out", required=True, type=Path, help="directory for the per-test CSVs, tables and plot")
    ap.add_argument("--methods", default=None, help="comma-separated subset of the config's methods")
    args = ap.parse_args(argv)
    full = yaml.safe_load(args.config.read_text())
    cfg = full["independence"]
    methods = cfg["methods"] if args.methods is None else args.methods.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    frames = []
    for method in methods:
        path = args.out / f"tests-{method}.csv"
        if not path.exists():  # a finished method is kept: the study resumes where it stopped
            entry = None if method in LIBRARY_TESTS else full["estimators"][method]
            rows = plan(cfg, method)
            t0 = time.perf_counter()

            def progress(k: int, method: str = method, total: int = len(rows), t0: float = t0) -> None:
                print(f"{method}: {k}/{total} tests, {time.perf_counter() - t0:.0f} s", flush=True)

            df = run_method(method, entry, rows, cfg["permutations"], progress)
            df.to_csv(path.with_suffix(".tmp"), index=False)
            path.with_suffix(".tmp").replace(path)
            print(f"{method}: {len(df)} tests, {df['seconds'].sum():.0f} s", flush=True)
        frames.append(_planned(pd.read_csv(path), plan(cfg, method)))
    write_outputs(pd.concat(frames, ignore_index=True), cfg, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
