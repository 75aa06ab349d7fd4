"""Snakemake script: train InfoNet with `params.train` on `params.device`, write `output.weights` (+ card)
and `output.log_csv`."""

import torch

from benchmarks.joblog import job_log

sm = snakemake  # noqa: F821
torch.set_num_threads(max(1, int(sm.threads)))

from estimators.infonet.training import train  # noqa: E402

with job_log(sm.log[0]):
    train(dict(sm.params.train), sm.output.weights, sm.output.log_csv, device=sm.params.device)
