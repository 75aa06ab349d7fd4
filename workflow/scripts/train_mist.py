"""Snakemake script: train MIST or MIST_QR (logic in estimators.mist.training).

params.train is the training dict (`quantile: true` for MIST_QR); outputs are
the weights (.safetensors, card next to it) and the loss-curve CSV; input.shards
the meta-dataset shards when the run reads them (`data.shards` > 0). Torch runs
`train.threads` threads and `train.workers` data processes feed it; the scheduler
reserves `models.<model>.threads` cores for the job (the default config reserves
one per training for one thread and one worker, so that both trainings run at once).
params.device is the config's `device` (auto | cpu | cuda | cuda:N).
"""

from benchmarks.joblog import job_log
from estimators.mist.training import merge_params, train


def main(smk) -> None:
    with job_log(smk.log[0]) as log:
        train_cfg = dict(smk.params.train)
        p = merge_params(train_cfg)
        if p["threads"] + p["workers"] != smk.threads:  # e.g. a SLURM profile's set-threads: the config decides
            print(
                f"note: the job was given {smk.threads} threads; training runs {p['threads']} torch threads "
                f"and {p['workers']} data workers (train.threads, train.workers in the config)",
                file=log,
            )
        card = train(
            train_cfg,
            smk.output.weights,
            smk.output.log_csv,
            device=smk.params.device,
            shards=list(smk.input.shards) or None,
        )
        print(f"best validation: {card['validation']}", file=log)


# The data worker is a spawned process, which re-imports this file: only the parent trains.
if __name__ == "__main__":
    main(snakemake)  # noqa: F821
