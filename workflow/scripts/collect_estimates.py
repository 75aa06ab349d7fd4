"""Snakemake script: concatenate estimate shards, checking completeness (benchmarks.evaluate)."""

from benchmarks.evaluate import collect, save_estimates
from benchmarks.joblog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]) as log:
    df = collect({tuple(k): v for k, v in sm.params.files.items()}, sm.params.corpora)
    save_estimates(df, sm.output[0])
    print(f"{len(df)} estimates, {int((df['status'] != 'ok').sum())} failed", file=log)
