"""The layers import one way: workflow -> benchmarks -> estimators; devbench (developer tools) on top.

Read statically from the source (every `import`, also inside functions), so a lazy import
cannot hide a dependency that runs later.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Which top-level packages each layer may import (itself included).
ALLOWED = {
    "estimators": {"estimators"},
    "benchmarks": {"estimators", "benchmarks"},
    "workflow": {"estimators", "benchmarks"},
    "tests": {"estimators", "benchmarks", "tests"},
    "devbench": {"estimators", "benchmarks", "devbench"},
}
PROJECT = {"estimators", "benchmarks", "devbench", "workflow", "tests"}


def _sources(layer: str) -> list[Path]:
    files = sorted((ROOT / layer).rglob("*.py"))
    if layer == "workflow":
        files += sorted((ROOT / layer).rglob("*.smk")) + [ROOT / "Snakefile"]
    return files


def _python_of(path: Path) -> str:
    """The Python lines of a Snakemake file: its import statements (rules' own syntax is not Python)."""
    if path.suffix == ".py":
        return path.read_text()
    return "\n".join(
        line.strip() for line in path.read_text().splitlines() if line.strip().startswith(("import ", "from "))
    )


def imports(path: Path, module: str | None = None) -> list[tuple[str, bool]]:
    """(imported module, at module level) for every import in `path`; relative imports resolved
    against `module` (the file's dotted name)."""
    tree = ast.parse(_python_of(path), filename=str(path))
    top_level = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top_level) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level and module:
                base = module.split(".")[: -node.level]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((name, id(node) in top_level))
    return out


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer):
    bad = []
    for path in _sources(layer):
        for name, _ in imports(path, _module_name(path)):
            top = name.split(".")[0]
            if top in PROJECT and top not in ALLOWED[layer]:
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def _package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {p: set() for p in PROJECT}
    for layer in PROJECT:
        for path in _sources(layer):
            for name, _ in imports(path, _module_name(path)):
                top = name.split(".")[0]
                if top in PROJECT and top != layer:
                    graph[layer].add(top)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by depth-first search (each reported once per entry point)."""
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_cycle_between_top_level_packages():
    assert _cycles(_package_graph()) == []


def test_no_import_cycle_between_library_modules():
    """Module-level imports inside `estimators/` and `benchmarks/` form no loop (a lazy import
    inside a function is allowed to point anywhere below its layer)."""
    modules = {_module_name(p): p for layer in ("estimators", "benchmarks") for p in _sources(layer)}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        for name, at_top in imports(path, mod):
            if not at_top:
                continue
            target = next((c for c in (name, name.rpartition(".")[0]) if c in modules and c != mod), None)
            # A package's own __init__ re-exporting its submodules is not a loop.
            if target and not mod.startswith(target + ".") and not target.startswith(mod + "."):
                graph[mod].add(target)
    assert _cycles(graph) == []


def test_the_checks_catch_a_violation(tmp_path):
    """The two checks can fail: a back-import and a loop are both reported."""
    src = tmp_path / "mod.py"
    src.write_text("def f():\n    from benchmarks import metrics\nimport workflow.scripts\n")
    names = {n for n, _ in imports(src)}
    assert {"benchmarks", "workflow.scripts"} <= names
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_the_library_imports_and_estimates_without_the_suite():
    """`import estimators` and a KSG and a MIST estimate need none of the benchmark suite's packages."""
    code = (
        "import sys\n"
        "for m in ('bmi', 'jax', 'snakemake', 'seaborn', 'matplotlib', 'benchmarks', 'devbench'):\n"
        "    sys.modules[m] = None\n"
        "import numpy as np, estimators\n"
        "names = estimators.available()\n"
        "rng = np.random.default_rng(0)\n"
        "x = rng.standard_normal((200, 2)); y = x + rng.standard_normal((200, 2))\n"
        "for n in ('ksg', 'gaussian', 'mist'):\n"
        "    assert estimators.get(n).estimate(x, y).ok, n\n"
        "print(len(names))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 9
