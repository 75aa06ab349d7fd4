"""Snakemake script: every table (logic in benchmarks.evaluate)."""
from benchmarks.evaluate import load_estimates, write_tables

sm = snakemake  # noqa: F821
written = write_tables(load_estimates(sm.input[0]), sm.params.out, sm.params.evaluation)
with open(sm.log[0], "w") as f:
    f.write("\n".join(written) + "\n")
