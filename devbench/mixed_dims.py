"""The MIST paper's mixed-dimension claim at a reduced budget: MIST trained on d in [1, 32] against
MIST trained on a single d, both scored at that d.

    python -m devbench.mixed_dims --steps 300 --out results/reference/mixed_dims.csv

Every model is the default config's MIST recipe (`models.mist.train` of config/config.yaml) at the
same step budget and seed, on fresh datasets of the paper's training families (no `train_beyond`
share), differing only in the dimension range: `mixed` d ~ U{1..32}; `single_<d>` d = d. Each single
model and the mixed one are scored on the same validation datasets at that d (IMD families, dx = dy
= d, n 10..500). The claim: mixed training cuts MSE 2-3x at d >= 16 (factor = single / mixed).
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent


def recipe(steps: int) -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    p = copy.deepcopy(cfg["models"]["mist"]["train"])
    p["data"] = {**p["data"], "shards": 0, "beyond_frac": 0.0, "val_size": 100}
    p.update(max_steps=int(steps), max_minutes=60, val_every=max(steps // 3, 1), calibrate=False, resume=False)
    return p


def _train(args) -> str:
    name, d_range, steps, out = args
    import torch

    from estimators.mist.training import train

    torch.set_num_threads(1)
    p = recipe(steps)
    p["data"]["d"] = list(d_range)
    path = Path(out) / f"{name}.safetensors"
    train(p, path, Path(out) / f"{name}.csv", device="cpu")
    return str(path)


def score(weights: str, d: int, size: int) -> float:
    import estimators
    from estimators.synthetic import metadataset

    spec = dict(recipe(1)["data"], d=[d, d], val_size=size, p_unequal=0.0)
    items = metadataset.validation_set(spec)
    est = estimators.get("mist", weights=weights)
    got = np.array([e.mi for e in est.estimate_batch([(i["x"], i["y"]) for i in items])])
    return float(np.mean((got - np.array([i["mi"] for i in items])) ** 2))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--dims", type=int, nargs="*", default=[16, 32])
    ap.add_argument("--val-size", type=int, default=200)
    ap.add_argument("--work", default="results/mixed_dims_work")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    jobs = [("mixed", (1, 32), args.steps, args.work)] + [
        (f"single_{d}", (d, d), args.steps, args.work) for d in args.dims
    ]
    # Not a multiprocessing.Pool: its daemonic workers may not start the trainer's data-loader process.
    with ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("spawn")) as pool:
        paths = dict(zip([j[0] for j in jobs], pool.map(_train, jobs)))
    rows = []
    for d in args.dims:
        mixed, single = score(paths["mixed"], d, args.val_size), score(paths[f"single_{d}"], d, args.val_size)
        rows.append(dict(d=d, steps=args.steps, mse_mixed=mixed, mse_single=single, factor=single / mixed))
    df = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, index=False)
    print(df.to_markdown(index=False, floatfmt=".4g"))


if __name__ == "__main__":
    main()
