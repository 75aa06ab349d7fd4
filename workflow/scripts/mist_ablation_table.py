"""Snakemake script: the ablation table, one row per variant (logic in benchmarks.ablation)."""

import json
from pathlib import Path

from benchmarks.ablation import CAPTION, ablation_frame
from benchmarks.joblog import job_log
from benchmarks.tables import write_table

sm = snakemake  # noqa: F821
with job_log(sm.log[0]) as log:
    rows = [json.loads(Path(p).read_text()) for p in sm.input]
    written = write_table(ablation_frame(rows), Path(sm.output.csv).with_suffix(""), CAPTION)
    print("\n".join(map(str, written)), file=log)
