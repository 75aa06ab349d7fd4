"""From per-shard estimate CSVs to the paper's tables and plots.

`collect` refuses incomplete input: a missing shard file, or a shard with fewer
rows than its corpus holds, is an error naming what is missing.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import metrics, plots, tables
from benchmarks.corpora import _bmi_items, assign_shards, plan
from estimators.atomic import atomic_path
from estimators.units import per_nat


def expected_ids(spec: dict[str, Any]) -> list[list[str]]:
    items = _bmi_items(spec) if spec.get("kind") == "bmi" else plan(spec)
    return [[d["id"] for d in shard] for shard in assign_shards(items, int(spec["shards"]))]


def collect(files: dict[tuple[str, str, int], str | os.PathLike], corpora: dict[str, Any]) -> pd.DataFrame:
    """Concatenate estimate CSVs keyed by (corpus, estimator, shard), checking completeness."""
    frames, problems = [], []
    ids_cache = {c: expected_ids(spec) for c, spec in corpora.items()}
    for (corpus, label, shard), path in sorted(files.items()):
        if not Path(path).is_file():
            problems.append(f"missing estimates for estimator {label!r} on corpus {corpus!r} shard {shard}: {path}")
            continue
        df = pd.read_csv(path, dtype={"id": str, "quantiles": str, "error": str})
        want = set(ids_cache[corpus][shard])
        got = set(df["id"])
        if want != got:
            problems.append(
                f"{path}: {len(want - got)} dataset(s) missing, {len(got - want)} unexpected "
                f"(estimator {label!r}, corpus {corpus!r}, shard {shard})"
            )
        frames.append(df)
    if problems:
        raise ValueError("incomplete estimates:\n  " + "\n  ".join(problems))
    if not frames:
        raise ValueError("no estimate files were given")
    return pd.concat(frames, ignore_index=True)


TABLES = {
    "mse_by_nbin": "MSE ({unit}²) by estimator, split and sample-size bin, over the datasets each estimator "
    "estimated (failure shares: failures_by_nbin).",
    "mse_by_nbin_ci": "MSE by sample-size bin with a bootstrap confidence interval over datasets, and the "
    "failed estimates where there are any.",
    "failures_by_nbin": "Share of datasets whose estimate failed, by sample-size bin.",
    "summary_by_nbin": "All metrics by corpus, split, estimator and n-bin.",
    "summary_by_dbin": "All metrics by dimension bin (d = max(dx, dy)).",
    "summary_by_family": "All metrics per family.",
    "accuracy": "Accuracy per corpus and split (failed estimates are counted, not dropped; relative error is "
    "|error| / max(MI, 0.1 nats)).",
    "coverage": "Empirical coverage and mean width of each estimator's intervals, over the datasets that "
    "have one (column intervals), at the nominal level the estimator reports (column level).",
    "calibration": "Calibration: empirical P(truth <= quantile) against the nominal level.",
    "timing": "Seconds per estimated dataset (training included for per-dataset methods; failures only in "
    "the total) and speed-up against the reference estimator's median time.",
}
PLOTS = ("mse_vs_n", "estimate_vs_truth", "time_vs_n", "calibration", "family_heatmap")


MI_COLUMNS = ("mi", "true_mi", "lower", "upper")  # estimate-table columns that hold an MI


def in_unit(df: pd.DataFrame, unit: str) -> pd.DataFrame:
    """The estimate table with every MI (estimates, truths, interval ends, quantiles) in `unit`;
    the table itself when that is nats, the unit the estimators write."""
    factor = per_nat(unit)
    if factor == 1.0:
        return df
    df = df.copy()
    for c in MI_COLUMNS:
        if c in df:
            df[c] = df[c] * factor
    if "quantiles" in df:
        df["quantiles"] = df["quantiles"].map(
            lambda q: json.dumps({t: v * factor for t, v in json.loads(q).items()}) if isinstance(q, str) and q else q
        )
    return df


def write_tables(df: pd.DataFrame, out: str | os.PathLike, cfg: dict[str, Any]) -> list[str]:
    """Every table of TABLES under `out`, as .csv, .md and .tex, in the unit `cfg["unit"]` (nats)."""
    out = Path(out)
    reps, level = int(cfg.get("ci_bootstrap", 1000)), float(cfg.get("ci_level", 0.95))
    ref = cfg.get("reference_estimator", "ksg")
    unit = cfg.get("unit", "nats")
    df = metrics.annotate(in_unit(df, unit))
    floor = metrics.REL_ERROR_FLOOR * per_nat(unit)

    def summarise(by: list[str], ci_reps: int = reps) -> pd.DataFrame:
        return metrics.summarise(df, by, ci_reps, level, rel_floor=floor)

    by_nbin = summarise(["corpus", "split", "estimator", "n_bin"])
    overall = summarise(["corpus", "split", "estimator"])
    frames = {
        "mse_by_nbin": tables.mse_by_nbin(by_nbin),
        "mse_by_nbin_ci": tables.with_ci(by_nbin),
        "failures_by_nbin": tables.mse_by_nbin(by_nbin, value="failure_rate"),
        "summary_by_nbin": by_nbin,
        "summary_by_dbin": summarise(["corpus", "split", "estimator", "d_bin"]),
        "summary_by_family": summarise(["corpus", "split", "family", "estimator"], 0),
        "accuracy": overall[
            [
                "corpus",
                "split",
                "estimator",
                "datasets",
                "failure_rate",
                "mse",
                "mse_lo",
                "mse_hi",
                "bias",
                "variance",
                "mae",
                "mean_rel_error",
            ]
        ],
        "coverage": overall[overall["coverage"].notna()][
            ["corpus", "split", "estimator", "intervals", "level", "coverage", "width"]
        ],
        "calibration": calibration_table(df),
        "timing": _timing(df, ref),
    }
    written = []
    for name, caption in TABLES.items():
        written += [str(p) for p in tables.write_table(frames[name], out / name, caption.format(unit=unit))]
    return written


def calibration_table(df: pd.DataFrame) -> pd.DataFrame:
    cal = metrics.calibration(df, ["corpus", "split", "estimator"])
    if not len(cal):
        return pd.DataFrame(columns=["corpus", "split", "estimator", "nominal", "empirical", "datasets"])
    return cal.rename(columns={"tau": "nominal"})


def write_plots(df: pd.DataFrame, out: str | os.PathLike, unit: str = "nats") -> list[str]:
    """Every figure of PLOTS under `out`, as PNG and PDF, MI in `unit`."""
    out = Path(out)
    df = metrics.annotate(in_unit(df, unit))
    by_family = metrics.summarise(
        df, ["corpus", "split", "family", "estimator"], 0, rel_floor=metrics.REL_ERROR_FLOOR * per_nat(unit)
    )
    args = {
        "mse_vs_n": df,
        "estimate_vs_truth": df,
        "time_vs_n": df,
        "calibration": calibration_table(df),
        "family_heatmap": by_family,
    }
    fns = {
        "mse_vs_n": functools.partial(plots.mse_vs_n, unit=unit),
        "estimate_vs_truth": functools.partial(plots.estimate_vs_truth, unit=unit),
        "time_vs_n": plots.time_vs_n,
        "calibration": plots.calibration_curves,
        "family_heatmap": plots.family_heatmap,
    }
    written = []
    for name in PLOTS:
        fns[name](args[name], out / name)
        written += [str(out / f"{name}.{fmt}") for fmt in plots.FORMATS]
    return written


def evaluate(df: pd.DataFrame, out: str | os.PathLike, cfg: dict[str, Any]) -> dict[str, list[str]]:
    """Tables and plots under `out`/tables and `out`/plots."""
    out = Path(out)
    return {
        "tables": write_tables(df, out / "tables", cfg),
        "plots": write_plots(df, out / "plots", cfg.get("unit", "nats")),
    }


def _timing(df: pd.DataFrame, ref: str) -> pd.DataFrame:
    """Per-dataset times over the estimated datasets (a refusal, e.g. Gaussian at n <= dx + dy, returns
    at once and would pass for speed); the total is everything the estimator spent."""
    timed = df["seconds"].where(df["ok"])
    t = (
        df.assign(timed=timed)
        .groupby(["corpus", "estimator"], as_index=False)
        .agg(
            datasets=("seconds", "size"),
            estimated=("timed", "count"),
            median_seconds=("timed", "median"),
            mean_seconds=("timed", "mean"),
            total_seconds=("seconds", "sum"),
        )
    )
    ref_t = t[t["estimator"] == ref].set_index("corpus")["median_seconds"]
    t["speedup_vs_" + ref] = [
        ref_t.get(c, np.nan) / m if m > 0 else np.nan for c, m in zip(t["corpus"], t["median_seconds"])
    ]
    return t


def save_estimates(df: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def load_estimates(path: str | os.PathLike) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"id": str, "quantiles": str, "error": str, "info": str})
