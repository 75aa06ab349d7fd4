"""Semantic checks of a workflow config, run before any job starts.

The JSON schema checks types; this checks meaning: that every estimator,
family, split, corpus and model named exists. Each error names its key.
"""

from __future__ import annotations

from typing import Any

import estimators
from benchmarks.corpora import _bmi_items, plan, sizes
from estimators.registry import estimator_class
from estimators.synthetic.families import get_family, split_families


def _param_error(name: str, params: dict[str, Any], build: bool) -> str | None:
    """Why `params` do not fit estimator `name`, or None. Misspelt names are found from the
    signature; with `build`, the estimator is also built (on the CPU, since the DAG may be parsed
    on a node without the jobs' GPUs; a trained model with the shipped weights), which catches
    out-of-range values too."""
    cls = estimator_class(name)
    accepted = cls.param_names()
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        return f"{cls.__name__} got unexpected parameters {unknown}"
    # Estimators without shipped weights (`requires_weights`) get theirs from the DAG's training
    # rule, which has not run yet: only the names are checked.
    if not build or (getattr(cls, "requires_weights", False) and "weights" not in params):
        return None
    params = dict(params)
    if "device" in accepted:
        params["device"] = "cpu"
    try:
        estimators.get(name, **params)
    except (TypeError, ValueError) as err:
        return str(err)
    return None


def check(config: dict[str, Any], build_estimators: bool = True) -> None:
    """Raise ValueError listing every semantic error of `config`. With `build_estimators=False`
    no estimator is built (parameter names are still checked, from the signatures): the
    workflow's parse does that, and builds them once, in the main process, before any job."""
    errors = []
    corpora = config.get("corpora", {})
    for cname, spec in corpora.items():
        where = f"corpora.{cname}"
        try:
            if spec.get("kind", "families") == "bmi":
                if "n" not in spec:
                    raise ValueError("a bmi corpus needs 'n'")
                _bmi_items(spec)
            else:
                if not spec.get("blocks"):
                    raise ValueError("a families corpus needs 'blocks'")
                for block in spec["blocks"]:
                    sizes(block["n"])
                    fams = block.get("families", block["split"])
                    if isinstance(fams, str):
                        split_families(fams)
                    else:
                        for f in fams:
                            get_family(f)
                n_items = len(plan(spec))
                if n_items < int(spec["shards"]):
                    raise ValueError(f"{n_items} datasets cannot fill {spec['shards']} shards")
        except (ValueError, KeyError, TypeError) as err:
            errors.append(f"{where}: {err}")
    names = estimators.available()
    models = config.get("models", {}) or {}
    for label, entry in config.get("estimators", {}).items():
        where = f"estimators.{label}"
        if entry["estimator"] not in names:
            errors.append(f"{where}.estimator: unknown estimator {entry['estimator']!r}; available: {', '.join(names)}")
        else:
            # A misspelt (and, when built, an out-of-range) parameter fails before any corpus is built.
            err = _param_error(entry["estimator"], dict(entry.get("params") or {}), build_estimators)
            if err:
                errors.append(f"{where}.params: {err}")
        for c in entry.get("corpora", []):
            if c not in corpora:
                errors.append(f"{where}.corpora: unknown corpus {c!r}; defined: {', '.join(corpora)}")
        if "model" in entry and entry["model"] not in models:
            errors.append(f"{where}.model: unknown model {entry['model']!r}; defined: {', '.join(models) or 'none'}")
    for name, model in models.items():
        init = model.get("init")
        if init is not None and (init not in models or models[init].get("trainer") != model.get("trainer")):
            errors.append(
                f"models.{name}.init: {init!r} is not a model of the same trainer in this config "
                f"(defined: {', '.join(models)})"
            )
        elif init is not None and (
            "init_weights" in (model.get("train") or {}) or "init" in (model.get("train") or {})
        ):
            errors.append(f"models.{name}: give the starting weights once, as `init` (a model), not also in train")
        try:  # the training parameters too, so that a typo fails before hours of other jobs
            if model.get("trainer") == "mist":
                from estimators.mist.training import check_params

                check_params(model.get("train"))
            elif model.get("trainer") == "infonet":
                from estimators.infonet.training import resolve_params

                resolve_params(model.get("train"))
        except (TypeError, ValueError) as err:
            errors.append(f"models.{name}.train: {err}")
    ref = config.get("evaluation", {}).get("reference_estimator", "ksg")
    if config.get("estimators") and ref not in config["estimators"]:
        errors.append(f"evaluation.reference_estimator: {ref!r} is not one of the configured estimators")
    configured = config.get("estimators") or {}
    for section, extra in (("independence", ("hsic", "dcorr")), ("cmi", ()), ("consistency", ())):
        for i, m in enumerate((config.get(section) or {}).get("methods", [])):
            if m not in configured and m not in extra:
                known = ", ".join([*configured, *extra])
                errors.append(f"{section}.methods[{i}]: {m!r} is not a configured estimator label; known: {known}")
    from benchmarks.ablation import VARIANTS

    for i, v in enumerate((config.get("ablation") or {}).get("variants", [])):
        if v not in VARIANTS:
            errors.append(f"ablation.variants[{i}]: unknown variant {v!r}; known: {', '.join(sorted(VARIANTS))}")
    if errors:
        raise ValueError("invalid config:\n  " + "\n  ".join(errors))
