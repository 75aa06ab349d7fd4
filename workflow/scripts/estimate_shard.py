"""Snakemake script: run one estimator on one corpus shard (logic in benchmarks.runner)."""

import torch

from benchmarks.joblog import job_log
from benchmarks.runner import run_shard

sm = snakemake  # noqa: F821
torch.set_num_threads(sm.threads)
with job_log(sm.log[0]) as log:
    df = run_shard(sm.wildcards.estimator, sm.params.entry, sm.input.shard, sm.wildcards.corpus, sm.output[0])
    print(f"{len(df)} datasets, {int((df['status'] != 'ok').sum())} failed", file=log)
