import json
from pathlib import Path

from estimators.code_digest import code_digest
from estimators.synthetic.metadataset import shard_paths, spec_digest
from benchmarks.config import check as _check_config
from estimators.registry import estimator_class

# Semantic checks (unknown estimator, family, corpus, model, misspelt parameter) at parse time,
# reading classes and config only: no estimator is built here, since every job (a SLURM job
# too) parses the workflow again. The main process builds them once, before any job starts
# (onstart below), so that an out-of-range parameter fails before the corpora are built.
_check_config(config, build_estimators=False)


onstart:
    _check_config(config)

RESULTS = config.get("results", "results")
CORPORA = config["corpora"]
ESTIMATORS = config["estimators"]
MODELS = config.get("models", {}) or {}
SHIPPED_DIR = Path(workflow.basedir) / "estimators" / "weights"

# Passed explicitly to the torch estimators (their `device` parameter, estimate.smk) and the
# trainers (training.smk); nothing reads it from the environment.
DEVICE = str(config.get("device", "auto"))


def accepts_device(estimator_name):
    """Whether the estimator's constructor takes `device` (read from its signature, not built)."""
    return "device" in estimator_class(estimator_name).param_names()


def estimator_entry(label):
    """{"estimator", "params"} of the configured estimator `label`, its weights and device filled in."""
    entry = dict(ESTIMATORS[label])
    params = dict(entry.get("params") or {})
    if "model" in entry:
        params["weights"] = model_weights(entry["model"])
    # The configured device, for the estimators that take one (an entry's own `device` wins).
    # Being part of the rules' params, switching it reruns those estimators, not KSG or the Gaussian.
    if accepts_device(entry["estimator"]):
        params.setdefault("device", DEVICE)
    return {"estimator": entry["estimator"], "params": params}


def weights_input(label):
    """{"weights": path} when the estimator `label` runs trained weights (the DAG's own or the
    shipped ones: either way, new weights rerun the jobs that use them), else {}."""
    entry = ESTIMATORS[label]
    return {"weights": model_weights(entry["model"])} if "model" in entry else {}


def code(script, *modules):
    """Digest of a workflow script and the project modules it runs. Rules carry it as a param,
    so that a change to a module they import reruns them (Snakemake tracks only the script)."""
    return code_digest(Path(workflow.basedir) / "workflow" / "scripts" / script, modules)


def shard_ids(corpus):
    return range(int(CORPORA[corpus]["shards"]))


def estimate_files():
    """{(corpus, estimator, shard): path} for every configured pair."""
    out = {}
    for label, entry in ESTIMATORS.items():
        for corpus in entry["corpora"]:
            for s in shard_ids(corpus):
                out[(corpus, label, s)] = f"{RESULTS}/estimates/{corpus}/{label}/shard-{s:03d}.csv"
    return out


def model_weights(model):
    """Weights an estimator uses: the DAG's own training output, or the packaged file. A model
    without a `shipped` file (mist_paper) is trained by the DAG even under use_shipped_weights."""
    if config.get("use_shipped_weights", False) and MODELS[model].get("shipped"):
        return str(SHIPPED_DIR / MODELS[model]["shipped"])
    return f"{RESULTS}/models/{model}.safetensors"


def _meta_specs():
    """{model: meta-dataset spec} for the MIST trainings that read shards (`data.shards` > 0)."""
    from estimators.mist.training import check_params, data_spec

    out = {}
    for name, spec in MODELS.items():
        if spec["trainer"] == "mist":
            s = data_spec(check_params(spec.get("train")))
            if int(s["shards"]):
                out[name] = s
    return out


META_SPECS = _meta_specs()
# Shards are named by their spec's digest, so MIST and MIST_QR on the same data share them.
META_BY_DIGEST = {spec_digest(s): s for s in META_SPECS.values()}


def training_shards(model):
    """The shard files a training run reads; [] when it streams fresh datasets."""
    if model not in META_SPECS:
        return []
    return [str(p) for p in shard_paths(f"{RESULTS}/metadataset", META_SPECS[model])]
