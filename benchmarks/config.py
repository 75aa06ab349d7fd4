"""Semantic checks of a workflow config, run before any job starts.

The JSON schema checks types; this checks meaning: that every estimator,
family, split, corpus and model named exists. Each error names its key.
"""
from __future__ import annotations

from typing import Any

import estimators
from estimators.registry import estimator_class
from benchmarks.corpora import plan, sizes, _bmi_items
from estimators.synthetic.families import get_family, split_families


def check(config: dict[str, Any]) -> None:
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
                for i, block in enumerate(spec["blocks"]):
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
            errors.append(f"{where}.estimator: unknown estimator {entry['estimator']!r}; "
                          f"available: {', '.join(names)}")
        else:
            # Build it once (with the shipped weights, for a trained model; on the CPU, since the
            # DAG may be parsed on a node without the jobs' GPUs): a misspelt or out-of-range
            # parameter fails here, before any corpus is built.
            params = dict(entry.get("params") or {})
            if estimator_class(entry["estimator"]).uses_gpu:
                params["device"] = "cpu"
            try:
                estimators.get(entry["estimator"], **params)
            except (TypeError, ValueError) as err:
                errors.append(f"{where}.params: {err}")
        for c in entry.get("corpora", []):
            if c not in corpora:
                errors.append(f"{where}.corpora: unknown corpus {c!r}; defined: {', '.join(corpora)}")
        if "model" in entry and entry["model"] not in models:
            errors.append(f"{where}.model: unknown model {entry['model']!r}; defined: {', '.join(models) or 'none'}")
    for name, model in models.items():
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
    if ref not in config.get("estimators", {}):
        errors.append(f"evaluation.reference_estimator: {ref!r} is not one of the configured estimators")
    from benchmarks.ablation import VARIANTS

    for i, v in enumerate((config.get("ablation") or {}).get("variants", [])):
        if v not in VARIANTS:
            errors.append(f"ablation.variants[{i}]: unknown variant {v!r}; known: {', '.join(sorted(VARIANTS))}")
    if errors:
        raise ValueError("invalid config:\n  " + "\n  ".join(errors))
