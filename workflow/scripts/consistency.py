"""Snakemake script of the three `consistency` rules (logic in benchmarks.consistency): corpus,
estimates, summary (table and plot)."""

from pathlib import Path

import pandas as pd

from benchmarks import consistency
from benchmarks.joblog import job_log
from benchmarks.tables import write_table
from estimators.atomic import atomic_path

sm = snakemake  # noqa: F821
with job_log(sm.log[0]) as log:
    if sm.rule == "consistency_corpus":
        consistency.build(sm.params.consistency, sm.output[0])
    elif sm.rule == "consistency_estimates":
        import torch

        torch.set_num_threads(sm.threads)  # as the corpus runs: one job, its threads
        df = consistency.estimate(sm.wildcards.method, sm.params.entry, sm.input.corpus)
        with atomic_path(sm.output[0]) as tmp:
            df.to_csv(tmp, index=False)
        print(f"{len(df)} datasets, {df['seconds'].sum():.1f} s, {(~df['ok']).sum()} failed", file=log)
    else:
        df = pd.concat([pd.read_csv(p) for p in sm.input], ignore_index=True)
        cfg, unit = sm.params.consistency, sm.params.unit
        write_table(
            consistency.summary(df, cfg, unit),
            Path(sm.output.csv).with_suffix(""),
            f"Self-consistency on sklearn's digits (n = {cfg['n']}, {cfg['reps']} reps, pool {cfg['pool']}, "
            f"noise {cfg['noise']}): indep_mi, I(A; B) with B's rows shuffled ({unit}; pass: |.| <= "
            f"{cfg['independence_tol']} nats); baseline_spearman, Spearman of I(A; B_r) with r (pass: >= "
            f"{cfg['min_spearman']}); dp, I(A; [B_r+k, B_r]) / I(A; B_r+k), ideal 1 (pass: worst |mean - 1| over r "
            f"<= {cfg['dp_tol']}); add, I([A1, A2]; [B1_r, B2_r]) / I(A1; B1_r), ideal 2 (pass: worst |mean - 2| "
            f"<= {cfg['add_tol']}); sd over reps; seconds per dataset.",
        )
        consistency.plot(consistency.ratios(df), Path(sm.output.png).with_suffix(""))
