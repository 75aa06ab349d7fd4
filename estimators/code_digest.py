"""Content digests of the package code a workflow rule runs.

Snakemake reruns a job when its script changes, not when a module the script
imports changes: editing an estimator would leave its old estimates looking
current. The rules therefore carry `code_digest(...)` as a param, and a changed
param reruns the job. The digest covers the script and every module of this
project it imports, followed statically (ast) through `import` statements
anywhere in a file, including function-local ones, so it errs towards
rerunning. A package's `__init__` that runs only as the parent of an imported
submodule is covered but not followed (the set does not depend on the order of
the walk); a package imported by its own name (`import estimators`) is followed.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from collections.abc import Iterable
from functools import cache
from pathlib import Path

PACKAGES = ("estimators", "benchmarks")


@cache
def _package_dir(top: str) -> Path | None:
    spec = importlib.util.find_spec(top)  # finds, does not import
    return Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None


@cache
def _module_file(name: str) -> Path | None:
    """The source file of a project module, found on disk without importing anything (no torch at DAG parse)."""
    top, *rest = name.split(".")
    root = _package_dir(top) if top in PACKAGES else None
    if root is None:
        return None
    base = root.joinpath(*rest)
    for f in (base / "__init__.py", base.with_suffix(".py") if rest else None):
        if f is not None and f.is_file():
            return f
    return None


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _imported(path: Path, name: str | None) -> set[str]:
    """Module names imported anywhere in `path` (`name` resolves relative imports)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and name:
                parts = _package_of(name, path).split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            if base:
                out.add(base)
                out.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
    return out


@cache
def _closure(path: Path, name: str | None) -> frozenset[Path]:
    followed: set[Path] = set()
    covered: set[Path] = set()  # parent packages of what is imported: they run, their imports need not
    todo = [(path, name)]
    while todo:
        p, n = todo.pop()
        if p in followed:
            continue
        followed.add(p)
        for mod in _imported(p, n):
            parts = mod.split(".")
            for i in range(1, len(parts) + 1):
                sub = ".".join(parts[:i])
                f = _module_file(sub)
                if f is None:
                    continue
                if f.name == "__init__.py" and i < len(parts):
                    covered.add(f)
                elif f not in followed:
                    todo.append((f, sub))  # a module, or a package imported by its own name
    return frozenset(followed | covered)


def code_files(script: str | Path | None = None, modules: Iterable[str] = ()) -> list[Path]:
    """The project files that `script` and `modules` run, sorted."""
    files: set[Path] = set()
    if script is not None:
        files |= _closure(Path(script).resolve(), None)
    for mod in modules:
        f = _module_file(mod)
        if f is None:  # e.g. an estimator registered from the user's own package: its file, and our imports
            spec = importlib.util.find_spec(mod)
            if spec is None or not (spec.origin or "").endswith(".py"):
                raise ValueError(f"no Python source found for module {mod!r}")
            f = Path(spec.origin)
        files |= _closure(f, mod)
    return sorted(files)


def code_digest(script: str | Path | None = None, modules: Iterable[str] = ()) -> str:
    """SHA-256 (16 hex digits) over the contents of `code_files`, independent of where the checkout lies."""
    h = hashlib.sha256()
    for f in code_files(script, modules):
        h.update(f.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]
