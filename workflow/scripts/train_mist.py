"""Snakemake script: train MIST or MIST_QR (logic in estimators.mist.training).

params.train is the training dict (`quantile: true` for MIST_QR); outputs are
the weights (.safetensors, card next to it) and the loss-curve CSV. The job's
cores (`models.<model>.threads`) hold `train.threads` torch threads plus
`train.workers` data processes.
"""
from benchmarks.joblog import job_log
from estimators.mist.training import train


def main(smk) -> None:
    with job_log(smk.log[0]) as log:
        card = train(dict(smk.params.train), smk.output.weights, smk.output.log_csv)
        print(f"best validation: {card['validation']}", file=log)


# The data worker is a spawned process, which re-imports this file: only the parent trains.
if __name__ == "__main__":
    main(snakemake)  # noqa: F821
