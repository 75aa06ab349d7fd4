"""Snakemake script: train MIST or MIST_QR (logic in estimators.mist.training).

params.train is the training dict (`quantile: true` for MIST_QR); outputs are
the weights (.safetensors, card next to it) and the loss-curve CSV.
"""
import sys

import torch

from estimators.mist.training import train

params = dict(snakemake.params.train)  # noqa: F821
torch.set_num_threads(int(params.get("threads", snakemake.threads)))  # noqa: F821
with open(snakemake.log[0], "w") as log:  # noqa: F821
    sys.stderr = log
    card = train(params, snakemake.output.weights, snakemake.output.log_csv)  # noqa: F821
    print(f"best validation: {card['validation']}", file=log)
