# The meta-dataset of a MIST training run with `data.shards: K`, as K shard jobs that run in
# parallel (a run with `shards: 0` streams fresh datasets instead). Not temp(): a rebuilt shard
# would make Snakemake rerun every training that reads it, so retraining MIST alone would
# retrain MIST_QR too. For the same reason, deleting them makes the next run retrain both.
rule metadataset_shard:
    output:
        f"{RESULTS}/metadataset/{{spec}}/shard-{{shard}}.npz",
    params:
        spec=lambda wc: META_BY_DIGEST[wc.spec],
        code=code("build_metadataset_shard.py"),
    # Before everything else, with the trainings that wait for them.
    priority: 10
    log:
        f"{RESULTS}/logs/metadataset/{{spec}}/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/metadataset/{{spec}}/shard-{{shard}}.tsv"
    resources:
        mem_mb=2000,
        runtime="30m",
    wildcard_constraints:
        spec=r"[0-9a-f]{12}",
        shard=r"\d{3}",
    script:
        "../scripts/build_metadataset_shard.py"
