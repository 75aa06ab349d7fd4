"""Snakemake script: one method's permutation tests on every planned dataset (benchmarks.independence)."""

from benchmarks.independence import plan, run_method
from benchmarks.joblog import job_log
from estimators.atomic import atomic_path

sm = snakemake  # noqa: F821
with job_log(sm.log[0]) as log:
    study = sm.params.study
    df = run_method(sm.wildcards.method, sm.params.entry, plan(study, sm.wildcards.method), study["permutations"])
    with atomic_path(sm.output[0]) as tmp:
        df.to_csv(tmp, index=False)
    print(f"{len(df)} tests, {df['seconds'].sum():.1f} s", file=log)
