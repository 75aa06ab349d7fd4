"""The MIST meta-dataset: many synthetic datasets with known MI.

Training datasets come ONLY from the training families (`TRAIN_FAMILIES`),
validation datasets ONLY from the in-distribution test families (`imd`); an
out-of-distribution (OoMD) family anywhere in either is an error.

A spec (from config) looks like

    {"seed": 0,
     "n": [10, 500],          # rows, drawn uniformly per dataset (per batch when streaming)
     "d": [2, 32],            # dx = dy = d drawn uniformly (the paper's protocol; from the family's
                              # minimum if that is higher, e.g. 2 for the 2pair families) ...
     "p_unequal": 0.2,        # ... except this fraction, where dx and dy are drawn independently
     "per_shard": 1000,       # datasets per shard (sharded generation)
     "val_size": 600, "val_seed": 12345,
     "n_small_frac": 0.0, "n_small": [10, 100]}   # optional oversampling of small n (training only)

Everything is deterministic from (seed, shard) or (seed, worker): the same spec
gives the same datasets. Two ways to get data:
- `build_shard(spec, shard, out_path)` writes one .npz (atomically) for sharded,
  parallel generation by the workflow;
- `stream_batches(spec, batch_size, seed)` yields fresh batches forever (each
  batch shares one n), for long training runs: no epoch ever repeats.

    python -m benchmarks.metadataset --seconds 10     # generation throughput
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any, Iterator

import numpy as np

from benchmarks.corpora import sizes
from benchmarks.families import IMD_FAMILIES, OOMD_FAMILIES, TRAIN_FAMILIES, dim_range, get_family, split_families
from estimators.atomic import atomic_path

DEFAULT_SPEC: dict[str, Any] = {
    "seed": 0, "n": [10, 500], "d": [2, 32], "p_unequal": 0.2, "per_shard": 1000,
    "val_size": 600, "val_seed": 12345, "val_n_step": 10, "val_n_points": 0,
    "n_small_frac": 0.0, "n_small": [10, 100],
}
_TAG_TRAIN, _TAG_VAL, _TAG_STREAM = 1, 2, 3


_FAMILY_KEYS = ("families", "val_families")  # default: the training families, and the IMD ones


def full_spec(spec: dict[str, Any] | None) -> dict[str, Any]:
    unknown = sorted(set(spec or {}) - set(DEFAULT_SPEC) - set(_FAMILY_KEYS))
    if unknown:  # a misspelt key would otherwise train silently on the default
        raise ValueError(f"unknown meta-dataset keys {unknown}; known: {', '.join([*DEFAULT_SPEC, *_FAMILY_KEYS])}")
    out = dict(DEFAULT_SPEC)
    out.update(spec or {})
    return out


def train_families(spec: dict[str, Any]) -> tuple[str, ...]:
    fams = spec.get("families", "train")
    names = tuple(split_families(fams)) if isinstance(fams, str) else tuple(fams)
    bad = [f for f in names if f not in TRAIN_FAMILIES]
    if bad:
        raise ValueError(f"meta-dataset training families must be training families; not allowed: {bad}")
    return names


def val_families(spec: dict[str, Any]) -> tuple[str, ...]:
    fams = spec.get("val_families", "imd")
    names = tuple(split_families(fams)) if isinstance(fams, str) else tuple(fams)
    bad = [f for f in names if f not in IMD_FAMILIES or f in OOMD_FAMILIES]
    if bad:
        raise ValueError(f"validation families must be IMD families; not allowed: {bad}")
    return names


def draw_dims(spec: dict[str, Any], family, rng: np.random.Generator) -> tuple[int, int]:
    """(dx, dy) for `family` (a registered family object)."""
    # A range reaching below a family's minimum (d = 1 for the 2pair families) starts at that minimum.
    lo, hi = dim_range(family, *spec["d"])
    d = int(rng.integers(lo, hi + 1))
    if rng.random() < float(spec.get("p_unequal", 0.0)) and not family.name.startswith("multi_additive_noise"):
        return d, int(rng.integers(lo, hi + 1))
    return d, d


def draw_dataset(spec: dict[str, Any], families: tuple[str, ...], n: int,
                 rng: np.random.Generator) -> dict[str, Any]:
    """One dataset: a family drawn uniformly, dims, parameters, n rows."""
    family = families[int(rng.integers(len(families)))]
    fam = get_family(family)
    dx, dy = draw_dims(spec, fam, rng)
    dist = fam.draw(dx, dy, rng)
    x, y = dist.sample(n, rng)
    return {"family": family, "n": n, "dx": dx, "dy": dy, "mi": float(dist.mi), "x": x, "y": y}


def draw_n(spec: dict[str, Any], rng: np.random.Generator) -> int:
    """n ~ U{n}; with `n_small_frac` > 0 that fraction of draws comes from U{n_small} instead."""
    frac = float(spec.get("n_small_frac", 0.0))
    key = "n_small" if frac > 0 and rng.random() < frac else "n"
    lo, hi = (int(v) for v in spec[key])
    return int(rng.integers(lo, hi + 1))


def _rng(spec: dict[str, Any], tag: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(spec["seed"]), tag, int(index)]))


def generate_shard(spec: dict[str, Any], shard: int) -> list[dict[str, Any]]:
    spec = full_spec(spec)
    fams = train_families(spec)
    rng = _rng(spec, _TAG_TRAIN, shard)
    return [draw_dataset(spec, fams, draw_n(spec, rng), rng) for _ in range(int(spec["per_shard"]))]


def build_shard(spec: dict[str, Any], shard: int, out_path) -> int:
    """Write training shard `shard` to `out_path` (.npz, atomic); return its dataset count.

    Layout: rows of all datasets concatenated (float32) with offsets, so one
    shard is a handful of arrays rather than thousands of zip entries.
    """
    if shard < 0:
        raise ValueError(f"shard index must be >= 0, got {shard}")
    items = generate_shard(spec, shard)
    n = np.array([it["n"] for it in items], dtype=np.int64)
    dx = np.array([it["dx"] for it in items], dtype=np.int64)
    dy = np.array([it["dy"] for it in items], dtype=np.int64)
    payload = {
        "n": n, "dx": dx, "dy": dy,
        "mi": np.array([it["mi"] for it in items], dtype=np.float64),
        "family": np.array([it["family"] for it in items]),
        "x": np.concatenate([it["x"].astype(np.float32).ravel() for it in items]),
        "y": np.concatenate([it["y"].astype(np.float32).ravel() for it in items]),
        "spec": np.array(json.dumps(full_spec(spec), sort_keys=True)),
        "shard": np.array(shard),
    }
    with atomic_path(out_path) as tmp:
        np.savez(tmp, **payload)
    return len(items)


def read_shard(path) -> Iterator[dict[str, Any]]:
    """Yield the datasets of a shard written by `build_shard`."""
    with np.load(path, allow_pickle=False) as z:
        n, dx, dy, mi, fam = z["n"], z["dx"], z["dy"], z["mi"], z["family"]
        xs, ys = z["x"], z["y"]
    ox = np.concatenate([[0], np.cumsum(n * dx)])
    oy = np.concatenate([[0], np.cumsum(n * dy)])
    for i in range(len(n)):
        yield {"family": str(fam[i]), "n": int(n[i]), "dx": int(dx[i]), "dy": int(dy[i]), "mi": float(mi[i]),
               "x": xs[ox[i]:ox[i + 1]].reshape(n[i], dx[i]).astype(np.float64),
               "y": ys[oy[i]:oy[i + 1]].reshape(n[i], dy[i]).astype(np.float64)}


def validation_set(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Fixed validation datasets from IMD families only; n on a grid (for batching): every `val_n_step`
    from the low end, or, with `val_n_points` = k > 0, k evenly spaced values as the test corpora's
    `linspace` n grids (whose lowest n carries the largest errors)."""
    spec = full_spec(spec)
    fams = val_families(spec)
    rng = np.random.default_rng(np.random.SeedSequence([int(spec["val_seed"]), _TAG_VAL]))
    lo, hi = (int(v) for v in spec["n"])
    points = int(spec.get("val_n_points", 0))
    if points > 0:
        grid = np.unique(sizes({"linspace": [lo, hi, points]}))
    else:
        grid = np.arange(lo, hi + 1, int(spec.get("val_n_step", 10)))
    vspec = dict(spec, p_unequal=0.0)  # validate on the paper's protocol, dx = dy
    return [draw_dataset(vspec, fams, int(grid[rng.integers(len(grid))]), rng) for _ in range(int(spec["val_size"]))]


def stream_batches(spec: dict[str, Any], batch_size: int, seed: int) -> Iterator[list[dict[str, Any]]]:
    """Fresh training batches forever; all datasets of a batch share one n."""
    spec = full_spec(spec)
    fams = train_families(spec)
    rng = _rng(spec, _TAG_STREAM, seed)
    while True:
        n = draw_n(spec, rng)
        yield [draw_dataset(spec, fams, n, rng) for _ in range(batch_size)]


def throughput(spec: dict[str, Any] | None = None, seconds: float = 10.0, features: bool = False) -> float:
    """Datasets per second generated on this core (optionally including MIST's features)."""
    spec = full_spec(spec)
    it = stream_batches(spec, 32, seed=0)
    feat = None
    if features:
        from estimators.mist.features import FeatureConfig, dataset_features
        from estimators.mist.training import DEFAULTS
        cfg = FeatureConfig(**DEFAULTS["features"])
        feat = lambda d: dataset_features(d["x"], d["y"], cfg)  # noqa: E731
    next(it)
    count, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        batch = next(it)
        if feat is not None:
            for d in batch:
                feat(d)
        count += len(batch)
    throughput.last_cpu_rate = count / max(1e-9, time.process_time() - c0)  # per CPU-second (busy machines)
    return count / (time.perf_counter() - t0)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Meta-dataset generation throughput (one core).")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args(argv)
    for label, feat in (("generation", False), ("generation + MIST features", True)):
        wall = throughput(seconds=args.seconds, features=feat)
        print(f"{label}: {wall:.0f} datasets/s wall, {throughput.last_cpu_rate:.0f} datasets per CPU-second")


if __name__ == "__main__":
    main()
