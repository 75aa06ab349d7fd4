"""Snakemake script: train InfoNet with `params.train`, write `output.weights` (+ card) and `output.log_csv`."""
import sys

import torch

torch.set_num_threads(max(1, int(snakemake.threads)))  # noqa: F821

from estimators.infonet.training import train  # noqa: E402

log = open(snakemake.log[0], "w") if snakemake.log else sys.stderr  # noqa: F821
sys.stderr = log
train(dict(snakemake.params.train), snakemake.output.weights, snakemake.output.log_csv)  # noqa: F821
