"""Accuracy, calibration and cost metrics over estimate tables.

Input: the concatenated per-shard CSVs written by `benchmarks.runner`. Failed
estimates stay in the table: they count in `failure_rate` and are excluded from
the error statistics, which are computed over successful estimates only.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from estimators.synthetic import bins

SLICED_SUFFIX = " [sliced MI]"
D_EDGES = [0, 2, 4, 8, 16, 32, np.inf]


def n_bin(n: pd.Series) -> pd.Series:
    return pd.Series(bins.n_bin(n.to_numpy()), index=n.index, dtype=object)


def d_bin(d: pd.Series) -> pd.Series:
    labels = [f"({int(a)},{b if np.isinf(b) else int(b)}]" for a, b in zip(D_EDGES[:-1], D_EDGES[1:])]
    return pd.cut(d, D_EDGES, labels=labels).astype(str)


def annotate(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    if "quantity" in df:
        # Sliced MI is not MI: its rows get an estimator label that says so, and so stand
        # apart from the same estimator's MI rows (1-D data) in every table and plot.
        sliced = df["quantity"].eq("sliced_mi") & ~df["estimator"].str.endswith(SLICED_SUFFIX)
        df.loc[sliced, "estimator"] = df.loc[sliced, "estimator"] + SLICED_SUFFIX
    df["ok"] = (df["status"] == "ok") & np.isfinite(df["mi"])
    df["err"] = df["mi"] - df["true_mi"]
    df["n_bin"] = n_bin(df["n"])
    df["d"] = df[["dx", "dy"]].max(axis=1)
    df["d_bin"] = d_bin(df["d"])
    has_iv = np.isfinite(df["lower"]) & np.isfinite(df["upper"])
    df["covered"] = np.where(has_iv, (df["lower"] <= df["true_mi"]) & (df["true_mi"] <= df["upper"]), np.nan)
    df["width"] = np.where(has_iv, df["upper"] - df["lower"], np.nan)
    # The nominal level of each interval, as the estimator reported it (its `info`).
    levels = df["info"].map(_interval_level) if "info" in df else np.nan
    df["level"] = np.where(has_iv, levels, np.nan)
    return df


def _interval_level(info: Any) -> float:
    value = json.loads(info).get("interval_level") if isinstance(info, str) and info else None
    return float(value) if value is not None else np.nan


# Relative error is |error| / max(true MI, this floor), in nats (tables in bits convert it). Without
# a floor one dataset with MI ~ 1e-4 decides a group's mean (and favours estimators clipped at 0,
# whose relative error there cannot exceed 1); below 0.1 nats the error is effectively absolute.
REL_ERROR_FLOOR = 0.1


def _bootstrap_ci(sq: np.ndarray, reps: int, level: float, seed: int) -> tuple[float, float]:
    if sq.size < 2 or reps <= 0:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    means = sq[rng.integers(0, sq.size, size=(reps, sq.size))].mean(1)
    a = (1 - level) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return float(lo), float(hi)


def summarise(
    df: pd.DataFrame,
    by: list[str],
    ci_reps: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
    rel_floor: float = REL_ERROR_FLOOR,
) -> pd.DataFrame:
    """One row per group: counts, failure rate, MSE (+ bootstrap CI), bias, variance, MAE, ...
    `rel_floor`: REL_ERROR_FLOOR in the table's unit (it is 0.1 nats in any unit)."""
    rows = []
    for key, g in df.groupby(by, sort=True, dropna=False):
        ok = g[g["ok"]]
        err = ok["err"].to_numpy()
        sq = err**2
        lo, hi = _bootstrap_ci(sq, ci_reps, ci_level, seed)
        rel = np.abs(err) / np.maximum(ok["true_mi"].to_numpy(), rel_floor) if len(ok) else np.array([])
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row.update(
            datasets=len(g),
            failed=int((~g["ok"]).sum()),
            failure_rate=float((~g["ok"]).mean()),
            mse=float(sq.mean()) if len(ok) else np.nan,
            mse_lo=lo,
            mse_hi=hi,
            median_se=float(np.median(sq)) if len(ok) else np.nan,
            bias=float(err.mean()) if len(ok) else np.nan,
            variance=float(err.var()) if len(ok) else np.nan,
            mae=float(np.abs(err).mean()) if len(ok) else np.nan,
            mean_rel_error=float(rel.mean()) if len(ok) else np.nan,
            intervals=int(ok["covered"].notna().sum()),
            # one nominal level per group, or NaN when its intervals mix levels (or report none)
            level=_one_level(ok["level"]),
            coverage=float(np.nanmean(ok["covered"])) if ok["covered"].notna().any() else np.nan,
            width=float(np.nanmean(ok["width"])) if ok["width"].notna().any() else np.nan,
            # over the estimated datasets: a refusal returns at once and would pass for speed
            median_seconds=float(np.nanmedian(ok["seconds"])) if ok["seconds"].notna().any() else np.nan,
            mean_seconds=float(np.nanmean(ok["seconds"])) if ok["seconds"].notna().any() else np.nan,
        )
        rows.append(row)
    return pd.DataFrame(rows)


def _one_level(levels: pd.Series) -> float:
    found = levels.dropna().unique()
    return float(found[0]) if len(found) == 1 else np.nan


def quantile_levels(df: pd.DataFrame) -> list[float]:
    levels = set()
    for q in df["quantiles"].dropna():
        if q:
            levels |= {float(k) for k in json.loads(q)}
    return sorted(levels)


def calibration(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Empirical P(truth <= q_tau) against tau, for estimators that report quantiles."""
    rows = []
    ok = df[df["ok"] & df["quantiles"].fillna("").astype(bool)]
    for key, g in ok.groupby(by, sort=True):
        qs = [json.loads(s) for s in g["quantiles"]]
        for tau in sorted({float(k) for q in qs for k in q}):
            vals = np.array([q.get(str(tau), q.get(repr(tau), np.nan)) for q in qs], dtype=float)
            m = np.isfinite(vals)
            row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
            row.update(tau=tau, empirical=float((g["true_mi"].to_numpy()[m] <= vals[m]).mean()), datasets=int(m.sum()))
            rows.append(row)
    return pd.DataFrame(rows)
