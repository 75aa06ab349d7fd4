"""Copy a finished run's headline tables into `results/reference/` (CSV and Markdown, no data).

    snakemake --cores 2 all && python -m benchmarks.reference

The README quotes these files; committing them makes a change in the numbers visible in review.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

TABLES = ("mse_by_nbin", "mse_by_nbin_ci", "failures_by_nbin", "accuracy", "coverage", "timing", "summary_by_dbin",
          "mist_ablation")
OPTIONAL = ("mist_ablation",)  # only configs with an `ablation` block make it (not paper.yaml, smoke.yaml)
PLOT = "mse_vs_n.png"


def copy_reference(results: Path, out: Path) -> list[Path]:
    present = [t for t in TABLES if (results / "tables" / f"{t}.csv").is_file()]
    missing = [f"{results}/tables/{t}.csv" for t in TABLES if t not in present and t not in OPTIONAL]
    if missing:
        raise FileNotFoundError(f"run the DAG first; missing: {', '.join(missing)}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for t in present:
        for ext in ("csv", "md"):
            written.append(Path(shutil.copyfile(results / "tables" / f"{t}.{ext}", out / f"{t}.{ext}")))
    written.append(Path(shutil.copyfile(results / "plots" / PLOT, out / PLOT)))
    written.append(Path(shutil.copyfile(results / "config_used.yaml", out / "config_used.yaml")))
    return written


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--results", default="results")
    ap.add_argument("--out", default="results/reference")
    args = ap.parse_args(argv)
    for p in copy_reference(Path(args.results), Path(args.out)):
        print(p)


if __name__ == "__main__":
    main()
