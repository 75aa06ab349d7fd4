def _estimate_inputs(wc):
    return {"shard": f"{RESULTS}/corpora/{wc.corpus}/shard-{wc.shard}.npz", **weights_input(wc.estimator)}


def _estimator_class(wc):
    return estimator_class(ESTIMATORS[wc.estimator]["estimator"])


def _estimator_entry(wc):
    return estimator_entry(wc.estimator)


rule estimate:
    input:
        unpack(_estimate_inputs),
    output:
        f"{RESULTS}/estimates/{{corpus}}/{{estimator}}/shard-{{shard}}.csv",
    params:
        entry=_estimator_entry,
        code=lambda wc: code("estimate_shard.py", _estimator_class(wc).__module__),
    threads: lambda wc: ESTIMATORS[wc.estimator].get("threads", 1)
    resources:
        # A torch estimator asks for a GPU unless its entry says `gpu: 0`.
        gpu=lambda wc: ESTIMATORS[wc.estimator].get("gpu", int(_estimator_class(wc).uses_gpu)),
        mem_mb=4000,
        runtime="2h",
    log:
        f"{RESULTS}/logs/estimates/{{corpus}}/{{estimator}}/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/estimate/{{corpus}}/{{estimator}}/shard-{{shard}}.tsv"
    wildcard_constraints:
        shard=r"\d{3}",
    script:
        "../scripts/estimate_shard.py"
