"""Snakemake script: run one estimator on one corpus shard (logic in benchmarks.runner)."""
import sys

import torch

from benchmarks.runner import run_shard

torch.set_num_threads(snakemake.threads)  # noqa: F821
with open(snakemake.log[0], "w") as log:  # noqa: F821
    sys.stderr = log
    df = run_shard(snakemake.wildcards.estimator, snakemake.params.entry, snakemake.input.shard,  # noqa: F821
                   snakemake.wildcards.corpus, snakemake.output[0])  # noqa: F821
    print(f"{len(df)} datasets, {int((df['status'] != 'ok').sum())} failed", file=log)
