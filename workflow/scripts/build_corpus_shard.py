"""Snakemake script: write one corpus shard (logic in benchmarks.corpora)."""
from benchmarks.corpora import build_shard

n = build_shard(snakemake.params.spec, int(snakemake.wildcards.shard), snakemake.output[0])  # noqa: F821
with open(snakemake.log[0], "w") as f:  # noqa: F821
    f.write(f"wrote {n} datasets to {snakemake.output[0]}\n")  # noqa: F821
