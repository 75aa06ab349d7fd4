"""Snakemake script: write one meta-dataset shard (logic in estimators.synthetic.metadataset)."""

import time

from benchmarks.joblog import job_log
from estimators.synthetic.metadataset import build_shard

sm = snakemake  # noqa: F821
with job_log(sm.log[0]) as log:
    t0 = time.perf_counter()
    n = build_shard(sm.params.spec, int(sm.wildcards.shard), sm.output[0])
    print(f"wrote {n} datasets to {sm.output[0]} ({n / (time.perf_counter() - t0):.0f} datasets/s)", file=log)
