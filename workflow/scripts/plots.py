"""Snakemake script: every figure (logic in benchmarks.evaluate)."""

from benchmarks.evaluate import load_estimates, write_plots
from benchmarks.joblog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]) as log:
    written = write_plots(load_estimates(sm.input[0]), sm.params.out, sm.params.unit)
    print("\n".join(written), file=log)
