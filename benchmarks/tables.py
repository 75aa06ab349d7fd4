"""Tables as CSV, Markdown and LaTeX (booktabs), written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from estimators.atomic import write_text

N_BIN_ORDER = ["[1,10)", "[10,100]", "(100,300]", "(300,500]", "(500,inf)"]


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "–"
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def write_table(df: pd.DataFrame, stem: str | os.PathLike, caption: str = "") -> list[Path]:
    """Write `stem`.csv, .md and .tex; return the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    named = isinstance(df.index, pd.MultiIndex) or df.index.name is not None
    flat = df.reset_index() if named else df.reset_index(drop=True)
    flat.columns = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in flat.columns]
    write_text(stem.with_suffix(".csv"), flat.to_csv(index=False))
    shown = flat.copy()
    for c in shown.columns:
        shown[c] = shown[c].map(_fmt)
    md = shown.to_markdown(index=False)
    write_text(stem.with_suffix(".md"), (f"{caption}\n\n" if caption else "") + md + "\n")
    # booktabs: pandas' to_latex without jinja-styled Styler keeps the dependency light.
    cols = list(shown.columns)
    lines = [r"\begin{table}[t]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{_tex(caption)}}}")
    lines += [
        r"\begin{tabular}{" + "l" * 1 + "r" * (len(cols) - 1) + "}",
        r"\toprule",
        " & ".join(_tex(c) for c in cols) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_tex(v) for v in row) + r" \\" for row in shown.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    write_text(stem.with_suffix(".tex"), "\n".join(lines))
    return [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]


def _tex(v) -> str:
    s = str(v)
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("–", "--")):
        s = s.replace(a, b)
    return s


def mse_by_nbin(summary: pd.DataFrame, value: str = "mse") -> pd.DataFrame:
    """Pivot: rows (corpus, split, estimator), columns n-bins, cells `value`. An estimator or
    bin with no value at all (every estimate failed) stays in the table as an empty cell."""
    # unstack, not pivot_table: pivot_table drops all-NaN rows and columns (or, with dropna=False,
    # adds every corpus x split x estimator combination, present or not).
    piv = summary.groupby(["corpus", "split", "estimator", "n_bin"], sort=True)[value].first().unstack("n_bin")
    piv = piv[[c for c in N_BIN_ORDER if c in piv.columns]]
    piv.columns.name = None
    return piv


def with_ci(summary: pd.DataFrame) -> pd.DataFrame:
    """MSE cells formatted as 'mse [lo, hi]', plus '(k/N failed)' where estimates failed: the MSE
    averages the datasets that were estimated, so a failure share changes what it compares."""
    s = summary.copy()
    s["mse_ci"] = [
        f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}]" + (f" ({k}/{n} failed)" if k else "")
        for m, lo, hi, k, n in zip(s["mse"], s["mse_lo"], s["mse_hi"], s["failed"], s["datasets"])
    ]
    return mse_by_nbin(s, "mse_ci")
