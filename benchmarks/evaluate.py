"""From per-shard estimate CSVs to the paper's tables and plots.

`collect` refuses incomplete input: a missing shard file, or a shard with fewer
rows than its corpus holds, is an error naming what is missing.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import metrics, plots, tables
from benchmarks.corpora import assign_shards, plan, _bmi_items
from estimators.atomic import write_text


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
            problems.append(f"{path}: {len(want - got)} dataset(s) missing, {len(got - want)} unexpected "
                            f"(estimator {label!r}, corpus {corpus!r}, shard {shard})")
        frames.append(df)
    if problems:
        raise ValueError("incomplete estimates:\n  " + "\n  ".join(problems))
    if not frames:
        raise ValueError("no estimate files were given")
    return pd.concat(frames, ignore_index=True)


def evaluate(df: pd.DataFrame, out: str | os.PathLike, cfg: dict[str, Any]) -> dict[str, list[str]]:
    """Write every table and plot under `out`; return {"tables": [...], "plots": [...]}."""
    out = Path(out)
    reps, level = int(cfg.get("ci_bootstrap", 1000)), float(cfg.get("ci_level", 0.95))
    ref = cfg.get("reference_estimator", "ksg")
    df = metrics.annotate(df)
    written: dict[str, list[str]] = {"tables": [], "plots": []}

    def table(frame: pd.DataFrame, name: str, caption: str) -> None:
        written["tables"] += [str(p) for p in tables.write_table(frame, out / "tables" / name, caption)]

    by_nbin = metrics.summarise(df, ["corpus", "split", "estimator", "n_bin"], reps, level)
    table(tables.mse_by_nbin(by_nbin), "mse_by_nbin",
          "MSE (nats²) by estimator, split and sample-size bin.")
    table(tables.with_ci(by_nbin), "mse_by_nbin_ci",
          f"MSE by sample-size bin with a {int(level * 100)}% bootstrap CI over datasets.")
    table(by_nbin, "summary_by_nbin", "All metrics by corpus, split, estimator and n-bin.")
    table(metrics.summarise(df, ["corpus", "split", "estimator", "d_bin"], reps, level), "summary_by_dbin",
          "All metrics by dimension bin (d = max(dx, dy)).")
    by_family = metrics.summarise(df, ["corpus", "split", "family", "estimator"], 0, level)
    table(by_family, "summary_by_family", "All metrics per family.")
    overall = metrics.summarise(df, ["corpus", "split", "estimator"], reps, level)
    table(overall[["corpus", "split", "estimator", "datasets", "failure_rate", "mse", "mse_lo", "mse_hi",
                   "bias", "variance", "mae", "mean_rel_error"]], "accuracy",
          "Accuracy per corpus and split (failed estimates are counted, not dropped).")
    cov = overall[overall["coverage"].notna()][["corpus", "split", "estimator", "datasets", "coverage", "width"]]
    table(cov, "coverage", "Empirical coverage and mean width of the nominal 90% intervals.")
    timing = _timing(df, ref)
    table(timing, "timing", f"Seconds per dataset (training included for per-dataset methods); "
                            f"speed-up = median time of {ref} / median time.")

    cal = metrics.calibration(df, ["corpus", "split", "estimator"])
    if len(cal):
        cal = cal.rename(columns={"tau": "nominal"})
    table(cal if len(cal) else pd.DataFrame(columns=["corpus", "split", "estimator", "nominal", "empirical"]),
          "calibration", "Calibration: empirical P(truth <= quantile) against the nominal level.")

    plot_dir = out / "plots"
    for name, fn, arg in (("mse_vs_n", plots.mse_vs_n, df), ("estimate_vs_truth", plots.estimate_vs_truth, df),
                          ("time_vs_n", plots.time_vs_n, df), ("calibration", plots.calibration_curves, cal),
                          ("family_heatmap", plots.family_heatmap, by_family)):
        path = plot_dir / f"{name}.png"
        fn(arg, path)
        written["plots"].append(str(path))
    return written


def _timing(df: pd.DataFrame, ref: str) -> pd.DataFrame:
    t = df.groupby(["corpus", "estimator"], as_index=False).agg(
        datasets=("seconds", "size"), median_seconds=("seconds", "median"), mean_seconds=("seconds", "mean"),
        total_seconds=("seconds", "sum"))
    ref_t = t[t["estimator"] == ref].set_index("corpus")["median_seconds"]
    t["speedup_vs_" + ref] = [ref_t.get(c, np.nan) / m if m > 0 else np.nan
                              for c, m in zip(t["corpus"], t["median_seconds"])]
    return t


def write_manifest(written: dict[str, list[str]], path: str | os.PathLike) -> None:
    write_text(path, json.dumps(written, indent=2))
