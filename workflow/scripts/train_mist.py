"""Snakemake script: train MIST or MIST_QR (logic in estimators.mist.training).

params.train is the training dict (`quantile: true` for MIST_QR); outputs are
the weights (.safetensors, card next to it) and the loss-curve CSV.
"""
import sys

import torch

from estimators.mist.training import train


def main(smk) -> None:
    params = dict(smk.params.train)
    torch.set_num_threads(int(params.get("threads", smk.threads)))
    with open(smk.log[0], "w") as log:
        sys.stderr = log
        card = train(params, smk.output.weights, smk.output.log_csv)
        print(f"best validation: {card['validation']}", file=log)


# The data worker is a spawned process, which re-imports this file: only the parent trains.
if __name__ == "__main__":
    main(snakemake)  # noqa: F821
