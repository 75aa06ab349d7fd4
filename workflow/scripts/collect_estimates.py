"""Snakemake script: concatenate estimate shards, checking completeness (benchmarks.evaluate)."""
from benchmarks.evaluate import collect, save_estimates

sm = snakemake  # noqa: F821
df = collect({tuple(k): v for k, v in sm.params.files.items()}, sm.params.corpora)
save_estimates(df, sm.output[0])
with open(sm.log[0], "w") as f:
    f.write(f"{len(df)} estimates, {int((df['status'] != 'ok').sum())} failed\n")
