"""Snakemake script: train one MIST ablation variant (logic in benchmarks.ablation)."""

import json

import torch

from benchmarks.ablation import run
from benchmarks.joblog import job_log
from estimators.atomic import write_text


def main(smk) -> None:
    torch.set_num_threads(int(smk.threads))
    with job_log(smk.log[0]):
        row = run(smk.wildcards.variant, int(smk.params.steps), smk.output.weights, smk.output.log_csv)
        write_text(smk.output.row, json.dumps(row, indent=1) + "\n")


# The data worker is a spawned process, which re-imports this file: only the parent trains.
if __name__ == "__main__":
    main(snakemake)  # noqa: F821
