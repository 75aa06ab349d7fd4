"""Copy a finished run's headline tables into `results/reference/` (CSV and Markdown, no data).

    snakemake --cores 2 all && python -m devbench.reference [--readme README.md]

The README quotes these files; committing them makes a change in the numbers visible in review.
`--readme` also rewrites the README's three MSE tables from the copied `mse_by_nbin.csv`
(the prose around them is written by hand).
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from estimators.synthetic.bins import N_BINS

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


# README table -> (corpus, splits, estimators); each table follows its anchor text.
README_TABLES = {
    "**`extended`**, the paper's M_test grid":
        ("extended", ("imd", "oomd"), ("mist", "mist_qr", "gaussian", "ksg", "infonet [sliced MI]")),
    "**`standard`**, every estimator":
        ("standard", ("imd", "oomd"), ("mist", "mist_qr", "gaussian", "ksg", "mine", "infonce", "minde_c",
                                       "minde_j", "infonet [sliced MI]")),
    "**`hard_oomd`** and **`highdim`**":
        ("extended", ("hard_oomd", "highdim"), ("mist", "mist_qr", "gaussian", "ksg", "infonet [sliced MI]")),
}
_BINS = tuple(label for _, _, label in N_BINS)


def _fmt(v: float) -> str:
    if v != v:  # NaN: every dataset of the cell failed
        return "–"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}" if v >= 1 else f"{v:.3g}"


def mse_table(mse, corpus: str, splits, names) -> str:
    """One README table (Markdown) from a `mse_by_nbin` frame."""
    lines = ["| split | estimator | " + " | ".join(_BINS) + " |", "| --- | --- | ---: | ---: | ---: |"]
    for split in splits:
        sub = mse[(mse.corpus == corpus) & (mse.split == split)].set_index("estimator")
        missing = [e for e in names if e not in sub.index]
        if missing:  # a row silently dropped from the README would hide a lost estimator
            raise ValueError(f"no {corpus}/{split} MSE rows for {missing}")
        lines += [f"| {split} | {e} | " + " | ".join(_fmt(float(sub.loc[e, b])) for b in _BINS) + " |"
                  for e in names]
    return "\n".join(lines)


def update_readme(readme: Path, mse_csv: Path) -> None:
    import pandas as pd

    mse, text = pd.read_csv(mse_csv), readme.read_text()
    for anchor, (corpus, splits, names) in README_TABLES.items():
        if anchor not in text:
            raise ValueError(f"{readme}: the table anchor {anchor!r} is gone; update README_TABLES")
        start = text.index("| split |", text.index(anchor))
        end = text.index("\n\n", start)
        text = text[:start] + mse_table(mse, corpus, splits, names) + text[end:]
    readme.write_text(text)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--results", default="results")
    ap.add_argument("--out", default="results/reference")
    ap.add_argument("--readme", help="also rewrite this README's MSE tables from the copied mse_by_nbin.csv")
    args = ap.parse_args(argv)
    for p in copy_reference(Path(args.results), Path(args.out)):
        print(p)
    if args.readme:
        update_readme(Path(args.readme), Path(args.out) / "mse_by_nbin.csv")
        print(args.readme)


if __name__ == "__main__":
    main()
