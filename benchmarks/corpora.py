"""Test corpora: deterministic sets of datasets with known MI, in shards.

A corpus spec (from config) is a list of *blocks*. Each block names a split,
its families, the sample sizes, the number of datasets per (family, n) cell and
how dimensions are chosen:

    {"split": "imd", "families": "imd",            # a split name or a list of families
     "n": [10, 36, ...] | {"linspace": [10, 500, 20]},
     "per_cell": 9,
     "dims": {"random": [2, 32]}                   # one d per family, dx = dy = d (the paper's grid)
           | {"fixed": [[40, 40], [16, 48]]}       # every family at each (dx, dy)
           | {"grid": [2, 4, 8, 16, 32]}}          # every family at each d, dx = dy = d

Every dataset's seed is derived from the corpus seed and the dataset's own key,
so a dataset does not change when other blocks are added. The `bmi` corpus
takes BMI's `BENCHMARK_TASKS` as they are, sampled by BMI.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.shards import write_shard
from estimators.synthetic.families import dim_range, get_family, min_dim_of, split_families
from estimators.validation import is_integer


def _seed(seed: int, key: str) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed), zlib.crc32(key.encode())])


def sizes(spec: Any) -> list[int]:
    """Sample sizes from a list of integers or {linspace: [lo, hi, num]}: each >= 2, none repeated."""
    if isinstance(spec, dict) and set(spec) == {"linspace"} and len(spec["linspace"]) == 3:
        lo, hi, num = spec["linspace"]
        if not (is_integer(num) and num >= 1 and lo <= hi):
            raise ValueError(f"linspace [lo, hi, num] needs lo <= hi and an integer num >= 1, got {spec!r}")
        out = [int(v) for v in np.linspace(lo, hi, int(num))]
    elif isinstance(spec, (list, tuple)) and spec and all(map(is_integer, spec)):
        out = [int(v) for v in spec]
    else:
        raise ValueError(
            f"sample sizes must be a non-empty list of integers or {{linspace: [lo, hi, num]}}, got {spec!r}"
        )
    if min(out) < 2:  # every estimator refuses fewer rows
        raise ValueError(f"sample sizes must be >= 2, got {out}")
    if len(set(out)) < len(out):  # the same n twice is the same data twice (linspace rounds to integers)
        raise ValueError(f"sample sizes repeat: {out} (from {spec!r})")
    return out


def _families(block: dict[str, Any]) -> list[str]:
    fams = block.get("families", block["split"])
    names = list(split_families(fams)) if isinstance(fams, str) else list(fams)
    for name in names:
        get_family(name)  # unknown names fail here, listing the known ones
    return names


def _dims(block: dict[str, Any], family: str, seed: int) -> list[tuple[int, int]]:
    """The family's (dx, dy) in this block. A family is only drawn where it is defined: a random
    d starts at its `min_dim` (2 for the 2pair families), grid and fixed dims below it are left out."""
    dims = block.get("dims", {"random": [2, 32]})
    if not isinstance(dims, dict) or len(dims) != 1 or next(iter(dims)) not in ("random", "grid", "fixed"):
        raise ValueError(f"block {block['split']!r}: dims must be exactly one of random, grid or fixed, got {dims!r}")
    fam = get_family(family)
    if "random" in dims:
        lo, hi = dim_range(fam, *dims["random"])
        d = int(np.random.default_rng(_seed(seed, f"d|{block['split']}|{family}")).integers(lo, hi + 1))
        return [(d, d)]
    if "grid" in dims:
        pairs = [(int(d), int(d)) for d in dims["grid"]]
    else:
        pairs = [(int(a), int(b)) for a, b in dims["fixed"]]
    return [(a, b) for a, b in pairs if min(a, b) >= min_dim_of(fam)]


def plan(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """All dataset descriptors (no data) of a family-based corpus, in a fixed order."""
    seed = int(spec["seed"])
    out = []
    keys: set[str] = set()
    for block in spec["blocks"]:
        split = block["split"]
        before = len(out)
        for family in _families(block):
            if family.startswith("multi_additive_noise"):
                dims = [(dx, dy) for dx, dy in _dims(block, family, seed) if dx == dy]
            else:
                dims = _dims(block, family, seed)
            for dx, dy in dims:
                for n in sizes(block["n"]):
                    for rep in range(int(block.get("per_cell", 1))):
                        key = f"{split}|{family}|{dx}x{dy}|n{n}|r{rep}"
                        if key in keys:  # same key, same seed: the same data scored twice
                            raise ValueError(
                                f"blocks repeat dataset {key!r}: give each block that shares "
                                f"families and sizes its own split name"
                            )
                        keys.add(key)
                        out.append(
                            {
                                "id": f"{len(out):06d}",
                                "key": key,
                                "split": split,
                                "family": family,
                                "n": n,
                                "dx": dx,
                                "dy": dy,
                                "rep": rep,
                                "seed": int(_seed(seed, key).generate_state(1)[0]),
                            }
                        )
        if len(out) == before:  # e.g. dims all below the families' minimum: a silent hole in the tables
            raise ValueError(f"block {split!r} has no datasets: check its families, dims, n and per_cell")
    return out


def assign_shards(items: list[dict[str, Any]], n_shards: int) -> list[list[dict[str, Any]]]:
    """Round-robin, so every shard gets a similar mix of sizes and dimensions."""
    return [items[i::n_shards] for i in range(n_shards)]


def materialise(desc: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(desc["seed"])
    dist = get_family(desc["family"]).draw(desc["dx"], desc["dy"], rng)
    x, y = dist.sample(desc["n"], rng)
    rec = {**desc, "true_mi": dist.mi, "params": dist.params, "quantity": "mi"}
    return rec, x, y


def _bmi_items(spec: dict[str, Any]) -> list[dict[str, Any]]:
    from bmi.benchmark import BENCHMARK_TASKS

    tasks = spec["tasks"] if "tasks" in spec else sorted(BENCHMARK_TASKS)  # leave it out for all 40
    if not tasks or len(set(tasks)) < len(tasks):  # a task twice is the same data scored twice
        raise ValueError(f"BMI corpus tasks must be distinct and not empty (leave the key out for all), got {tasks!r}")
    unknown = [t for t in tasks if t not in BENCHMARK_TASKS]
    if unknown:
        raise ValueError(f"unknown BMI task(s) {unknown}; known: {', '.join(sorted(BENCHMARK_TASKS))}")
    out = []
    for task_id in tasks:
        for n in sizes(spec["n"]):
            for rep in range(int(spec.get("per_cell", 1))):
                key = f"bmi|{task_id}|n{n}|r{rep}"
                out.append(
                    {
                        "id": f"{len(out):06d}",
                        "key": key,
                        "split": "bmi",
                        "family": task_id,
                        "n": n,
                        "rep": rep,
                        "seed": int(_seed(spec["seed"], key).generate_state(1)[0]) % (2**31),
                    }
                )
    return out


def _bmi_materialise(desc: dict[str, Any]):
    from bmi.benchmark import BENCHMARK_TASKS

    task = BENCHMARK_TASKS[desc["family"]]
    x, y = task.sample(desc["n"], seed=desc["seed"])
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    rec = {
        **desc,
        "dx": task.dim_x,
        "dy": task.dim_y,
        "true_mi": float(task.mutual_information),
        "params": task.params if len(str(task.params)) < 2000 else {},
        "quantity": "mi",
    }
    return rec, x, y


def build_shard(spec: dict[str, Any], shard: int, out_path: str) -> int:
    """Write shard `shard` of the corpus described by `spec`; return its dataset count."""
    n_shards = int(spec["shards"])
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} out of range for a corpus of {n_shards} shards")
    is_bmi = spec.get("kind") == "bmi"
    items = _bmi_items(spec) if is_bmi else plan(spec)
    mine = assign_shards(items, n_shards)[shard]
    make = _bmi_materialise if is_bmi else materialise
    records, arrays = [], []
    with threadpool_limits(1):  # same bytes whatever the BLAS threads (a multithreaded matmul rounds otherwise)
        for desc in mine:
            rec, x, y = make(desc)
            records.append(rec)
            arrays.append((x, y))
    write_shard(out_path, records, arrays)
    return len(records)


def count(spec: dict[str, Any]) -> int:
    return len(_bmi_items(spec) if spec.get("kind") == "bmi" else plan(spec))


def iter_specs(corpora: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    return corpora.items()
