rule corpus_shard:
    output:
        f"{RESULTS}/corpora/{{corpus}}/shard-{{shard}}.npz",
    params:
        spec=lambda wc: CORPORA[wc.corpus],
        code=code("build_corpus_shard.py"),
    log:
        f"{RESULTS}/logs/corpora/{{corpus}}/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/corpus/{{corpus}}/shard-{{shard}}.tsv"
    resources:
        mem_mb=2000,
        runtime="20m",
    wildcard_constraints:
        shard=r"\d{3}",
    script:
        "../scripts/build_corpus_shard.py"
