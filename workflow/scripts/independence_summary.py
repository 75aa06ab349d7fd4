"""Snakemake script: the independence benchmark's tables and power curves (benchmarks.independence)."""

from pathlib import Path

import pandas as pd

from benchmarks.independence import write_outputs
from benchmarks.joblog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    df = pd.concat([pd.read_csv(p) for p in sm.input], ignore_index=True)
    write_outputs(df, sm.params.study, Path(sm.output.md[0]).parent, plots=Path(sm.output.png).parent)
