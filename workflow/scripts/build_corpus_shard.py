"""Snakemake script: write one corpus shard (logic in benchmarks.corpora)."""

from benchmarks.corpora import build_shard
from benchmarks.joblog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]) as log:
    n = build_shard(sm.params.spec, int(sm.wildcards.shard), sm.output[0])
    print(f"wrote {n} datasets to {sm.output[0]}", file=log)
