"""Snakemake script of the `claims_table` rule (logic in benchmarks.claims)."""

from pathlib import Path

from benchmarks import claims
from benchmarks.evaluate import load_estimates
from benchmarks.joblog import job_log
from benchmarks.tables import write_table

sm = snakemake  # noqa: F821
with job_log(sm.log[0]) as log:
    table, curves = claims.claims(load_estimates(sm.input[0]))
    write_table(table, Path(sm.output.csv).with_suffix(""), claims.CAPTION)
    claims.plot(curves, Path(sm.output.png).with_suffix(""))
    print(table[["claim", "mist", "verdict"]].to_string(index=False), file=log)
