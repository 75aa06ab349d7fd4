"""Time per rule of a finished run, from Snakemake's per-job benchmark files.

    python -m devbench.rule_times [results/benchmarks]

Every rule writes `results/benchmarks/<rule>/.../*.tsv` (or `<rule>.tsv`); this sums
wall and CPU seconds per rule, with estimate and corpus jobs split by corpus and
estimator. Jobs run side by side, so the sum of wall times exceeds the run's wall time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def job_key(rel: Path) -> str:
    """'estimate/extended/mist/shard-000.tsv' -> 'estimate/extended/mist'; 'tables.tsv' -> 'tables'."""
    parts = rel.with_suffix("").parts
    if parts[0] == "estimate":
        return "/".join(parts[:3])
    if parts[0] == "corpus":
        return "/".join(parts[:2])
    return parts[0]


def rule_times(root: str | Path) -> pd.DataFrame:
    root = Path(root)
    files = sorted(root.rglob("*.tsv"))
    if not files:
        raise FileNotFoundError(f"no benchmark files under {root}: run the DAG first")
    rows = []
    for f in files:
        t = pd.read_csv(f, sep="\t")
        rows.append(
            {
                "rule": job_key(f.relative_to(root)),
                "wall_s": float(t["s"].iloc[0]),
                "cpu_s": float(t["cpu_time"].iloc[0]),
            }
        )
    df = (
        pd.DataFrame(rows)
        .groupby("rule")
        .agg(jobs=("wall_s", "size"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"))
    )
    return df.sort_values("wall_s", ascending=False).round(1)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", nargs="?", default="results/benchmarks")
    args = ap.parse_args(argv)
    df = rule_times(args.root)
    print(df.to_string())
    print(f"sum of job wall times: {df['wall_s'].sum():.0f} s over {int(df['jobs'].sum())} jobs")


if __name__ == "__main__":
    main()
