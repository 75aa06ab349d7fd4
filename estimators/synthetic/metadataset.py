"""The MIST meta-dataset: many synthetic datasets with known MI.

Training datasets come ONLY from the training families (`TRAIN_FAMILIES`),
validation datasets ONLY from the in-distribution test families (`imd`); an
out-of-distribution (OoMD) family anywhere in either is an error. With
`beyond_frac` > 0, that share of both comes from the `train_beyond` families
(fresh draws; the test-only splits `mixture`, `mixed`, `flow` are never drawn).

A spec (from config) looks like

    {"seed": 0,
     "n": [10, 500],          # rows, drawn uniformly per dataset (per batch when streaming)
     "d": [2, 32],            # dx = dy = d drawn uniformly (the paper's protocol; from the family's
                              # minimum if that is higher, e.g. 2 for the 2pair families) ...
     "p_unequal": 0.2,        # ... except this fraction, where dx and dy are drawn independently
     "per_shard": 1000,       # datasets per shard (sharded generation)
     "n_block": 1,            # shards: consecutive runs of this many datasets share one n (a training batch)
     "shards": 0,             # training data: 0 streams fresh batches; K > 0 reads K shards, epoch after epoch
     "val_size": 600, "val_seed": 12345,
     "n_small_frac": 0.0, "n_small": [10, 100],   # optional oversampling of small n (training only)
     "beyond_frac": 0.0,      # this share of training AND validation datasets comes from the
                              # `train_beyond` families (mixtures, categories, flows), the rest as above,
     "beyond_d": None,        # with their own d range ([lo, hi]; None: `d`),
     "beyond_reuse": 1}       # and, in the training stream, this many datasets of a batch per drawn
                              # distribution (their Monte Carlo MI and flows cost 10-100x a paper family's)

Everything is deterministic from (seed, shard) or (seed, worker): the same spec
gives the same datasets. Two ways to get data:
- `build_shard(spec, shard, out_path)` writes one .npz (atomically); the workflow's
  `metadataset_shard` rule builds the shards in parallel, and `shard_batches`
  serves them to training as batches (one n per `n_block`), epoch after epoch,
  as the published MIST trains on a fixed meta-dataset;
- `stream_batches(spec, batch_size, seed)` yields fresh batches forever (each
  batch shares one n), for long training runs: no epoch ever repeats.

    python -m estimators.synthetic.metadataset --seconds 10                       # generation throughput
    python -m estimators.synthetic.metadataset --build DIR --spec '{"shards": 4, "per_shard": 1024}'  # a run's shards
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from estimators.synthetic.families import (
    IMD_FAMILIES,
    OOMD_FAMILIES,
    TRAIN_FAMILIES,
    dim_range,
    get_family,
    split_families,
)
from estimators.synthetic.shards import Shard, write_shard
from estimators.validation import is_integer

DEFAULT_SPEC: dict[str, Any] = {
    "seed": 0,
    "n": [10, 500],
    "d": [2, 32],
    "p_unequal": 0.2,
    "per_shard": 1000,
    "n_block": 1,
    "shards": 0,
    "val_size": 600,
    "val_seed": 12345,
    "val_n_step": 10,
    "val_n_points": 0,
    "n_small_frac": 0.0,
    "n_small": [10, 100],
    "beyond_frac": 0.0,
    "beyond_d": None,
    "beyond_reuse": 1,
}
_TAG_TRAIN, _TAG_VAL, _TAG_STREAM = 1, 2, 3
KIND = "meta-dataset"


_FAMILY_KEYS = ("families", "val_families")  # default: the training families, and the IMD ones


def full_spec(spec: dict[str, Any] | None) -> dict[str, Any]:
    unknown = sorted(set(spec or {}) - set(DEFAULT_SPEC) - set(_FAMILY_KEYS))
    if unknown:  # a misspelt key would otherwise train silently on the default
        raise ValueError(f"unknown meta-dataset keys {unknown}; known: {', '.join([*DEFAULT_SPEC, *_FAMILY_KEYS])}")
    out = dict(DEFAULT_SPEC)
    out.update(spec or {})
    for key, least in (
        ("per_shard", 1),
        ("n_block", 1),
        ("shards", 0),
        ("val_size", 1),
        ("val_n_step", 1),
        ("val_n_points", 0),
        ("beyond_reuse", 1),
    ):
        v = out[key]
        if not is_integer(v) or v < least:
            raise ValueError(f"meta-dataset {key} must be an integer >= {least}, got {v!r}")
        out[key] = int(v)  # numpy integers would not serialise into the shard's stored spec
    for key in ("n", "n_small", "d", "beyond_d"):
        least = 1 if key in ("d", "beyond_d") else 2  # n >= 2: every estimator refuses fewer rows
        v = out[key]
        if key == "beyond_d" and v is None:
            continue
        if not (isinstance(v, (list, tuple)) and len(v) == 2 and all(map(is_integer, v)) and least <= v[0] <= v[1]):
            raise ValueError(f"meta-dataset {key} must be [lo, hi], integers with {least} <= lo <= hi, got {v!r}")
    for key in ("p_unequal", "n_small_frac", "beyond_frac"):
        if not isinstance(out[key], (int, float)) or isinstance(out[key], bool) or not 0 <= out[key] <= 1:
            raise ValueError(f"meta-dataset {key} is a probability in [0, 1], got {out[key]!r}")
    if out["per_shard"] % out["n_block"]:
        raise ValueError(
            f"meta-dataset per_shard ({out['per_shard']}) must be a multiple of n_block "
            f"({out['n_block']}), so that every block of one n is whole"
        )
    return out


def training_shard_spec(data: dict[str, Any] | None, batch_size: int) -> dict[str, Any]:
    """The spec of a training run's shards: its data spec with one n per training batch."""
    spec = full_spec(data)
    if "n_block" in (data or {}) and data["n_block"] != batch_size:
        raise ValueError(
            f"meta-dataset n_block ({data['n_block']}) must equal the training batch_size "
            f"({batch_size}), or be left out: a training batch shares one n"
        )
    if spec["per_shard"] % batch_size:
        raise ValueError(
            f"meta-dataset per_shard ({spec['per_shard']}) must be a multiple of the training "
            f"batch_size ({batch_size}): a shard is read as whole batches of one n"
        )
    return full_spec(dict(spec, n_block=int(batch_size)))


def _as_stored(spec: dict[str, Any]) -> dict[str, Any]:
    """The full spec as a shard stores it (JSON: tuples become lists)."""
    return json.loads(json.dumps(full_spec(spec), sort_keys=True))


def spec_digest(spec: dict[str, Any]) -> str:
    """A short name for a spec's shards (shared by every training run of the same data)."""
    return hashlib.sha256(json.dumps(_as_stored(spec), sort_keys=True).encode()).hexdigest()[:12]


def _family_names(spec: dict[str, Any], key: str, default: str) -> tuple[str, ...]:
    fams = spec.get(key, default)
    names = tuple(split_families(fams)) if isinstance(fams, str) else tuple(fams)
    if not names:
        raise ValueError(f"meta-dataset {key} is empty: name a split or at least one family")
    return names


def train_families(spec: dict[str, Any]) -> tuple[str, ...]:
    names = _family_names(spec, "families", "train")
    bad = [f for f in names if f not in TRAIN_FAMILIES]
    if bad:
        raise ValueError(f"meta-dataset training families must be training families; not allowed: {bad}")
    return names


def val_families(spec: dict[str, Any]) -> tuple[str, ...]:
    names = _family_names(spec, "val_families", "imd")
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


def draw_dataset(spec: dict[str, Any], families: tuple[str, ...], n: int, rng: np.random.Generator) -> dict[str, Any]:
    """One dataset: a family drawn uniformly (from `train_beyond` with probability `beyond_frac`),
    dims, parameters, n rows."""
    return draw_datasets(spec, families, n, rng, 1)[0]


def draw_datasets(
    spec: dict[str, Any], families: tuple[str, ...], n: int, rng: np.random.Generator, reuse: int
) -> list[dict[str, Any]]:
    """`draw_dataset`, but a `train_beyond` distribution gives `reuse` datasets (fresh rows each)."""
    frac = float(spec.get("beyond_frac", 0.0))
    count = 1
    if frac > 0 and rng.random() < frac:  # no draw at 0: specs without it keep their exact datasets
        families = split_families("train_beyond")
        if spec.get("beyond_d") is not None:
            spec = dict(spec, d=spec["beyond_d"])
        count = reuse
    family = families[int(rng.integers(len(families)))]
    fam = get_family(family)
    dx, dy = draw_dims(spec, fam, rng)
    dist = fam.draw(dx, dy, rng)
    out = []
    for _ in range(count):
        x, y = dist.sample(n, rng)
        out.append({"family": family, "n": n, "dx": dx, "dy": dy, "mi": float(dist.mi), "x": x, "y": y})
    return out


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
    out, block = [], int(spec["n_block"])
    for i in range(int(spec["per_shard"])):
        if i % block == 0:
            n = draw_n(spec, rng)
        out.append(draw_dataset(spec, fams, n, rng))
    return out


def build_shard(spec: dict[str, Any], shard: int, out_path) -> int:
    """Write training shard `shard` to `out_path` (the library's shard format, kind "metadataset",
    x and y as float32; atomic); return its dataset count."""
    if shard < 0:
        raise ValueError(f"shard index must be >= 0, got {shard}")
    with threadpool_limits(1):  # same bytes whatever the BLAS threads, as the corpora
        items = generate_shard(spec, shard)
    records = [{"family": it["family"], "mi": float(it["mi"])} for it in items]
    write_shard(
        out_path,
        KIND,
        records,
        [(it["x"], it["y"]) for it in items],
        dtype=np.float32,
        header={"spec": _as_stored(spec), "shard": int(shard)},
    )
    return len(items)


def shard_paths(directory, spec: dict[str, Any]) -> list[Path]:
    """Where the `shards` shards of `spec` live under `directory` (the workflow's layout)."""
    return [Path(directory) / spec_digest(spec) / f"shard-{i:03d}.npz" for i in range(full_spec(spec)["shards"])]


def read_shard(path) -> Iterator[dict[str, Any]]:
    """Yield the datasets of a shard written by `build_shard`."""
    shard = _open_shard(path, None)
    for i in range(len(shard)):
        yield _item(shard, i)


def _open_shard(path, spec: dict[str, Any] | None) -> Shard:
    """A shard, checked to be of `spec` (when given); one of another spec is a ValueError naming it."""
    shard = Shard(path, KIND)
    stored = full_spec(shard.header["spec"])
    want = _as_stored(spec) if spec is not None else stored
    if stored != want:
        diff = sorted(k for k in set(stored) | set(want) if stored.get(k) != want.get(k))
        raise ValueError(f"{path} was built from another meta-dataset spec (differs in {diff}); rebuild it")
    return shard


def _item(shard: Shard, i: int) -> dict[str, Any]:
    rec, x, y = shard.dataset(i)
    return {
        "family": rec["family"],
        "n": x.shape[0],
        "dx": x.shape[1],
        "dy": y.shape[1],
        "mi": rec["mi"],
        "x": x,
        "y": y,
    }


def ordered_shards(paths, spec: dict[str, Any]) -> list[str]:
    """The shard files of `spec` by shard index, each checked (readable, same spec, 0..K-1 once)."""
    found = sorted((int(_open_shard(p, spec).header["shard"]), str(p)) for p in paths)
    if [i for i, _ in found] != list(range(len(paths))):
        raise ValueError(f"shards must be numbered 0..{len(paths) - 1} once each, got indices {[i for i, _ in found]}")
    return [p for _, p in found]


def shard_batches(
    paths, spec: dict[str, Any], seed: int, part: tuple[int, int] = (0, 1), skip: int = 0
) -> Iterator[list[dict[str, Any]]]:
    """Training batches from the shards of `spec` (built with its `n_block`), forever: every
    epoch visits each block of one n once, shards in an order drawn from (seed, epoch) and the
    blocks of each in a drawn order. One shard is in memory at a time (the paper-scale meta-
    dataset is ~16 GB). With part = (i, k), data worker i of k reads every k-th shard. `skip`
    batches are passed over first (a resumed run continues its epoch), unread shards unloaded."""
    spec = full_spec(spec)
    mine = ordered_shards(paths, spec)[part[0] :: part[1]]
    if not mine:
        raise ValueError(f"data worker {part[0]} of {part[1]} has no shard: use at most {len(paths)} workers")
    block = spec["n_block"]
    per = spec["per_shard"] // block  # blocks per shard
    epoch = 0
    while True:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), _TAG_TRAIN, epoch]))
        for k in rng.permutation(len(mine)):
            blocks = rng.permutation(per)  # drawn even when skipped, so the order does not depend on skip
            if skip >= per:
                skip -= per
                continue
            shard = _open_shard(mine[k], spec)
            for b in blocks[skip:]:
                yield [_item(shard, j) for j in range(b * block, (b + 1) * block)]
            skip = 0
        epoch += 1


def build_missing(directory, spec: dict[str, Any]) -> list[Path]:
    """The shard paths of `spec` under `directory`, building those that are not there yet."""
    paths = shard_paths(directory, spec)
    for i, path in enumerate(paths):
        if not path.is_file():
            build_shard(spec, i, path)
    return paths


def validation_set(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Fixed validation datasets from IMD families (and the `train_beyond` ones at `beyond_frac`); n on
    a grid (for batching): every `val_n_step` from the low end, or, with `val_n_points` = k > 0, k
    evenly spaced values as the test corpora's `linspace` n grids (whose lowest n carries the largest
    errors)."""
    spec = full_spec(spec)
    fams = val_families(spec)
    rng = np.random.default_rng(np.random.SeedSequence([int(spec["val_seed"]), _TAG_VAL]))
    lo, hi = (int(v) for v in spec["n"])
    points = int(spec.get("val_n_points", 0))
    if points > 0:
        grid = np.unique(np.linspace(lo, hi, points).astype(np.int64))  # as a corpus linspace, repeats merged
    else:
        grid = np.arange(lo, hi + 1, int(spec.get("val_n_step", 10)))
    vspec = dict(spec, p_unequal=0.0)  # validate on the paper's protocol, dx = dy
    return [draw_dataset(vspec, fams, int(grid[rng.integers(len(grid))]), rng) for _ in range(int(spec["val_size"]))]


def stream_batches(spec: dict[str, Any], batch_size: int, seed: int) -> Iterator[list[dict[str, Any]]]:
    """Fresh training batches forever; all datasets of a batch share one n."""
    spec = full_spec(spec)
    fams = train_families(spec)
    rng = _rng(spec, _TAG_STREAM, seed)
    reuse = int(spec["beyond_reuse"])
    while True:
        n = draw_n(spec, rng)
        batch: list[dict[str, Any]] = []
        while len(batch) < batch_size:
            batch += draw_datasets(spec, fams, n, rng, min(reuse, batch_size - len(batch)))
        yield batch


def throughput(spec: dict[str, Any] | None = None, seconds: float = 10.0) -> float:
    """Datasets per second generated on this core. With MIST's features on top:
    `python -m devbench.mist_bench train-speed` (this module stays free of the training
    code, so that the shard rule's code digest does not cover it)."""
    spec = full_spec(spec)
    it = stream_batches(spec, 32, seed=0)
    next(it)
    count, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        count += len(next(it))
    throughput.last_cpu_rate = count / max(1e-9, time.process_time() - c0)  # per CPU-second (busy machines)
    return count / (time.perf_counter() - t0)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Meta-dataset generation throughput (one core), or build shards.")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--build", metavar="DIR", help="write the spec's shards (its `shards` of them) into DIR")
    ap.add_argument("--spec", default="{}", help="meta-dataset spec as JSON (with --build)")
    ap.add_argument("--batch-size", type=int, default=64, help="with --build: the training batch size (one n each)")
    args = ap.parse_args(argv)
    if args.build:
        spec = training_shard_spec(json.loads(args.spec), args.batch_size)
        if spec["shards"] < 1:
            raise SystemExit("--build needs a spec with shards >= 1")
        for path in build_missing(args.build, spec):
            print(path)
        return
    wall = throughput(seconds=args.seconds)
    print(f"generation: {wall:.0f} datasets/s wall, {throughput.last_cpu_rate:.0f} datasets per CPU-second")


if __name__ == "__main__":
    main()
