"""Name -> estimator class. Adding an estimator = one class + `@register`; no list to keep.

Two sources, both read on the first `available()` / `estimator_class()` / `get()` (so that
`import estimators` stays cheap: torch-based modules load only then):

- this package: every module of `estimators` (subpackages included) whose source defines a
  class decorated with `@register` is imported. Modules are found with `pkgutil` and read with
  `ast`, not imported, so data, training and tool modules never load for a lookup;
- other installed packages: Python entry points in the group `mist_bench.estimators`
  (`ENTRY_POINT_GROUP`), each `name = "package.module:Class"` naming an `Estimator` subclass
  whose `name` is the entry point's name. In a `pyproject.toml`:

      [project.entry-points."mist_bench.estimators"]
      my_method = "my_package.estimator:MyMethod"

  A plugin that fails to import, or does not name an `Estimator` subclass of that name, raises
  `EstimatorPluginError` naming the entry point: it is never skipped silently.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import pkgutil
import re
from collections.abc import Mapping
from typing import Any

from estimators.base import Estimator

ENTRY_POINT_GROUP = "mist_bench.estimators"

_REGISTRY: dict[str, type[Estimator]] = {}
_LOADED = False  # set once the package scan and the entry points have all registered
_LOADING = False  # guards against a module that asks the registry while it is being imported


class EstimatorPluginError(RuntimeError):
    """An entry point in `ENTRY_POINT_GROUP` that cannot be loaded or registered."""


def register(cls: type[Estimator]) -> type[Estimator]:
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no `name`")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise TypeError(
            f"estimator name {cls.name!r} is registered twice ({_qualname(_REGISTRY[cls.name])} and {_qualname(cls)})"
        )
    _REGISTRY[cls.name] = cls
    return cls


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


_DECORATOR = re.compile(r"^[ \t]*@[ \t]*(?:\w+\.)*register[ \t]*(?:#.*)?$", re.M)


def _defines_registered_class(path: str) -> bool:
    """Whether the source file defines a class decorated with `register` (`@register`,
    `@registry.register`, `@estimators.register`), read statically."""
    try:
        with open(path, encoding="utf-8") as f:
            source = f.read()
    except OSError:
        return False
    if not _DECORATOR.search(source):  # most modules: no parse needed
        return False
    for node in ast.walk(ast.parse(source, path)):
        if isinstance(node, ast.ClassDef):
            for dec in node.decorator_list:
                if (isinstance(dec, ast.Name) and dec.id == "register") or (
                    isinstance(dec, ast.Attribute) and dec.attr == "register"
                ):
                    return True
    return False


def estimator_modules() -> list[str]:
    """Modules of the `estimators` package that define registered estimators, sorted.

    Walks the package's directories with `pkgutil.iter_modules` (which, unlike `walk_packages`,
    imports nothing) and keeps the modules whose source defines a `@register`-decorated class.
    """
    import estimators

    found = []

    def walk(paths: list[str], prefix: str) -> None:
        for info in pkgutil.iter_modules(paths, prefix):
            spec = info.module_finder.find_spec(info.name)  # type: ignore[call-arg]
            origin = getattr(spec, "origin", None) or ""
            if origin.endswith(".py") and _defines_registered_class(origin):
                found.append(info.name)
            if info.ispkg and spec is not None and spec.submodule_search_locations:
                walk(list(spec.submodule_search_locations), info.name + ".")

    walk(list(estimators.__path__), "estimators.")
    return sorted(found)


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    seen, out = set(), []
    for ep in sorted(eps, key=lambda e: (e.name, e.value)):
        if (ep.name, ep.value) not in seen:  # one distribution found twice on the path
            seen.add((ep.name, ep.value))
            out.append(ep)
    return out


def _describe(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    where = f" (distribution {dist.name} {dist.version})" if dist is not None else ""
    return f"entry point {ep.name!r} = {ep.value!r} in group {ENTRY_POINT_GROUP!r}{where}"


def _load_plugin(ep: importlib.metadata.EntryPoint) -> None:
    try:
        obj = ep.load()
    except Exception as err:  # noqa: BLE001 - re-raised, naming the entry point
        raise EstimatorPluginError(
            f"estimator plugin failed to load: {_describe(ep)}: {type(err).__name__}: {err}"
        ) from err
    if not (isinstance(obj, type) and issubclass(obj, Estimator)):
        raise EstimatorPluginError(
            f"estimator plugin {_describe(ep)} names {obj!r}, not a subclass of estimators.Estimator"
        )
    if obj.name != ep.name:
        raise EstimatorPluginError(
            f"estimator plugin {_describe(ep)}: the class's `name` is {obj.name!r}; "
            "it must equal the entry point's name"
        )
    try:
        register(obj)
    except TypeError as err:
        raise EstimatorPluginError(f"estimator plugin {_describe(ep)}: {err}") from err


def _load_all() -> None:
    global _LOADED, _LOADING
    if _LOADED or _LOADING:
        return
    _LOADING = True
    try:
        for mod in estimator_modules():
            importlib.import_module(mod)
        for ep in _entry_points():
            _load_plugin(ep)
        _LOADED = True
    finally:
        _LOADING = False


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
