def _estimate_inputs(wc):
    entry = ESTIMATORS[wc.estimator]
    inputs = {"shard": f"{RESULTS}/corpora/{wc.corpus}/shard-{wc.shard}.npz"}
    if "model" in entry:  # the DAG's own or the shipped weights: either way, new weights rerun the job
        inputs["weights"] = model_weights(entry["model"])
    return inputs


def _estimator_class(wc):
    return estimator_class(ESTIMATORS[wc.estimator]["estimator"])


def _estimator_entry(wc):
    entry = dict(ESTIMATORS[wc.estimator])
    params = dict(entry.get("params") or {})
    if "model" in entry:
        params["weights"] = model_weights(entry["model"])
    # The configured device, for the estimators that take one (an entry's own `device` wins).
    # Being part of this param, switching it reruns those estimators, not KSG or the Gaussian.
    if accepts_device(entry["estimator"]):
        params.setdefault("device", DEVICE)
    return {"estimator": entry["estimator"], "params": params}


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
