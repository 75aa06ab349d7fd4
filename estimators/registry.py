"""Name -> estimator class. Adding an estimator = one class + `@register`."""
from __future__ import annotations

import importlib
from typing import Any, Mapping

from estimators.base import Estimator

_REGISTRY: dict[str, type[Estimator]] = {}

# Modules whose import registers estimators. Importing lazily keeps
# `import estimators` cheap; torch-based modules load only when listed here.
_MODULES = (
    "estimators.ksg",
    "estimators.gaussian",
    "estimators.mine",
    "estimators.infonce",
    "estimators.minde",
    "estimators.mist.adapter",
    "estimators.infonet",
)


def register(cls: type[Estimator]) -> type[Estimator]:
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no `name`")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise TypeError(f"estimator name {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    for mod in _MODULES:
        importlib.import_module(mod)


def available() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def estimator_class(name: str) -> type[Estimator]:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown estimator {name!r}; available: {', '.join(sorted(_REGISTRY))}") from None


def get(name: str, **params: Any) -> Estimator:
    return estimator_class(name)(**params)


def from_config(entry: Mapping[str, Any]) -> Estimator:
    """Build from a config entry {"estimator": name, "params": {...}}."""
    if "estimator" not in entry:
        raise ValueError(f"estimator config entry has no 'estimator' key: {dict(entry)}")
    params = entry.get("params") or {}
    if not isinstance(params, Mapping):
        raise ValueError(f"'params' of estimator {entry['estimator']!r} must be a mapping")
    return get(entry["estimator"], **params)
