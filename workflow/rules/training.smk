# One rule per trained model, named train_<model>, so that `snakemake train_mist` works.
# Under use_shipped_weights the estimators read the packaged weights and these rules do not run,
# except for models without a `shipped` file (mist_paper, mist_paper_qr).


def _train_params(model_name):
    """The trainer's parameters; a model with `init` starts from that model's weights (a later stage)."""
    spec = MODELS[model_name]
    train = dict(spec.get("train") or {})
    if "init" in spec:  # the trainers' own key for a starting checkpoint
        key = {"mist": "init_weights", "infonet": "init"}[spec["trainer"]]
        train[key] = f"{RESULTS}/models/{spec['init']}.safetensors"
    return train


def _train_rule(model_name):
    spec = MODELS[model_name]
    trainer = spec["trainer"]

    rule:
        name:
            f"train_{model_name}"
        input:
            shards=training_shards(model_name),
            init=[f"{RESULTS}/models/{spec['init']}.safetensors"] if "init" in spec else [],
        output:
            weights=f"{RESULTS}/models/{model_name}.safetensors",
            card=f"{RESULTS}/models/{model_name}.json",
            log_csv=f"{RESULTS}/models/{model_name}_loss.csv",
        params:
            train=_train_params(model_name),
            code=code(f"train_{trainer}.py"),
            device=DEVICE,  # passed to the trainer; a param, so that switching it retrains
        threads: spec.get("threads", 2)
        # Start training first: every estimate of a trained model waits for it.
        priority: 10
        resources:
            gpu=1,
            mem_mb=8000,
            runtime="10h",
        log:
            f"{RESULTS}/logs/train_{model_name}.log",
        benchmark:
            f"{RESULTS}/benchmarks/train_{model_name}.tsv"
        script:
            f"../scripts/train_{trainer}.py"


for _m in MODELS:
    _train_rule(_m)


# Every configured model (`snakemake --cores all --configfile config/pretrain_mist.yaml models`
# rebuilds the shipped MIST and MIST_QR from scratch).
rule models:
    input:
        [f"{RESULTS}/models/{m}.safetensors" for m in MODELS],
