"""Snakemake script of the three `cmi` rules (logic in benchmarks.cmi): corpus, estimates, summary."""

from pathlib import Path

import pandas as pd

from benchmarks import cmi
from benchmarks.joblog import job_log
from benchmarks.tables import write_table
from estimators.atomic import atomic_path

sm = snakemake  # noqa: F821
with job_log(sm.log[0]) as log:
    if sm.rule == "cmi_corpus":
        cmi.build(sm.params.cmi, sm.output[0])
    elif sm.rule == "cmi_estimates":
        df = cmi.estimate(sm.wildcards.method, sm.params.entry, sm.input.corpus)
        with atomic_path(sm.output[0]) as tmp:
            df.to_csv(tmp, index=False)
        print(f"{len(df)} datasets, {df['seconds'].sum():.1f} s", file=log)
    else:
        df = pd.concat([pd.read_csv(p) for p in sm.input], ignore_index=True)
        unit = sm.params.unit
        write_table(
            cmi.summary(df, unit),
            Path(sm.output.csv).with_suffix(""),
            f"Conditional MI on Gaussian (X, Y, Z) with analytic CMI: MSE ({unit}^2), bias and mean |error| per "
            "method and d = dx = dy = dz. ksg: Frenzel-Pompe; gaussian: the closed form; others: the chain rule.",
        )
