"""Small-budget ablations of MIST design choices, scored on the IMD validation split only.

    python -m benchmarks.ablation --out results/ablations/mist_ablation.csv \
        --steps 300 variant [variant ...]

Each variant trains with the same step budget and seed and writes one row
(validation MSE overall and by n-bin, training minutes) to the CSV; its weights and loss
curve go to `work/<variant>/` beside the CSV. The workflow's `ablations` target runs the
configured variants as jobs.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import time
from pathlib import Path

# Each variant changes one thing against `base`: the trainer's defaults (estimators.mist.training.DEFAULTS),
# the shipped design without its pair and radial side inputs (`pair_stats` is a variant here, which is how
# it was chosen).
VARIANTS = {
    "base": {},
    "no_copula": {"features": {"normalisation": "standard"}},
    "no_side_input": {"features": {"side_input": False}},
    "pair_stats": {"features": {"pair_stats": True}},
    # Against `pair_stats`, not the base: the shipped weights use both (and raw_stats for n <= 100).
    "pair_radial_stats": {"features": {"pair_stats": True, "radial_stats": True}},
    # Measured at 2,000 deterministic steps (d from 1, half the batches at n = 10..40): validation MSE
    # 0.250 against 0.235 for pair_radial_stats, so the shipped weights do not use block_stats.
    "pair_radial_block_stats": {"features": {"pair_stats": True, "radial_stats": True, "block_stats": True}},
    # Against `pair_radial_stats`: adds statistics of the raw (not rank-transformed) values.
    "pair_radial_raw_stats": {"features": {"pair_stats": True, "radial_stats": True, "raw_stats": True}},
    # The shipped design: the raw statistics only where the ranks are coarse (n <= 100).
    "pair_radial_raw_small_n": {
        "features": {"pair_stats": True, "radial_stats": True, "raw_stats": True, "raw_max_n": 100}
    },
    "shrink_1": {"features": {"shrink": 1.0, "extra_shrinks": []}},
    "all_rows": {"features": {"max_rows": None}},
    "k_pairs_4": {"features": {"k_pairs": 4}},
    "k_pairs_16": {"features": {"k_pairs": 16}},
    "width_32": {"model": {"width": 32, "head_hidden": 64}},
    "width_96": {"model": {"width": 96, "heads": 4}},
    "no_swap_augment": {"swap_augment": False},
    "qr_base": {"quantile": True},
}


def run(variant: str, steps: int, weights: str | Path, log_csv: str | Path, extra: dict | None = None) -> dict:
    """Train one variant (its weights, their card next to them, and the loss curve at the paths
    given); return its table row."""
    from estimators.mist.training import train

    params = copy.deepcopy(VARIANTS[variant])  # train() merges it over its defaults
    # No replays and the schedule on steps: the validation numbers are then the same from run to
    # run (with replays they moved by up to 20% with the machine's load; `minutes` still does).
    params.update(
        {
            "max_steps": steps,
            "max_minutes": 1e6,
            "val_every": max(50, steps // 4),
            "data": {"val_size": 400},
            "resume": False,
            "replay_pool": 0,
            "schedule_by": "steps",
            **(extra or {}),
        }
    )
    Path(weights).parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    card = train(params, weights, log_csv)
    v = card["validation"]
    row = {
        "variant": variant,
        "features": json.dumps(card["features"], sort_keys=True),
        "steps": steps,
        "datasets": card["training"]["datasets_seen"],
        "fresh_datasets": card["training"].get("fresh_datasets"),
        "minutes": round((time.perf_counter() - t0) / 60, 2),
        "best_step": v.get("step"),
        "val_mse": v["mse"],
        "val_mse_[10,100]": v["mse_[10,100]"],
        "val_mse_(100,300]": v["mse_(100,300]"],
        "val_mse_(300,500]": v["mse_(300,500]"],
        "change": json.dumps(VARIANTS[variant], sort_keys=True),
    }
    return row


CAPTION = (
    "MIST ablations: validation MSE (IMD validation split) of each one-change variant at the same "
    "step budget; ratio_to_base > 1 means the change hurts."
)


def ablation_frame(rows: list[dict]):
    """The ablation table: one row per variant, with its validation MSE relative to `base`."""
    import pandas as pd

    df = pd.DataFrame(rows)
    cols = [
        "variant",
        "change",
        "steps",
        "datasets",
        "minutes",
        "val_mse",
        "val_mse_[10,100]",
        "val_mse_(100,300]",
        "val_mse_(300,500]",
    ]
    df = df[cols]
    if "base" in set(df["variant"]):
        df["ratio_to_base"] = df["val_mse"] / float(df.loc[df["variant"] == "base", "val_mse"].iloc[0])
    return df


def swap_eval(weights: str, kind: str = "mist", val_size: int = 600) -> dict:
    """Validation MSE of one checkpoint with and without swap-averaging (an inference-time choice)."""
    import numpy as np

    import estimators
    from estimators.synthetic import metadataset
    from estimators.synthetic.bins import mse_by_bin

    items = metadataset.validation_set({"val_size": val_size})
    mi = np.array([d["mi"] for d in items])
    out = {}
    for swap in (False, True):
        est = estimators.get(kind, weights=weights, swap_average=swap)
        pred = np.array([e.mi for e in est.estimate_batch([(d["x"], d["y"]) for d in items])])
        m = mse_by_bin((pred - mi) ** 2, [d["n"] for d in items])
        out[f"swap_average={swap}"] = {"val_mse": m.pop("mse"), **m}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("variants", nargs="*", help=f"any of {', '.join(sorted(VARIANTS))}")
    ap.add_argument("--swap-eval", metavar="WEIGHTS", help="only compare swap-averaging on/off for a checkpoint")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", default="results/ablations/mist_ablation.csv")
    args = ap.parse_args(argv)
    if args.swap_eval:
        print(json.dumps(swap_eval(args.swap_eval), indent=1))
        return
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; known: {', '.join(sorted(VARIANTS))}")
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    for v in args.variants:
        work = path.parent / "work" / v
        row = run(v, args.steps, work / "weights.safetensors", work / "loss.csv")
        new = not path.exists()
        with open(path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        print(row, flush=True)


if __name__ == "__main__":
    main()
