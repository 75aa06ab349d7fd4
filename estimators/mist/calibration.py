"""Conformal calibration of MIST_QR's interval on held-out IMD datasets.

Pinball training on a small CPU budget leaves the quantiles too tight. One
scalar s >= 1 widens every quantile around the median, q'_tau = m + s (q_tau - m),
which keeps them ordered (non-crossing). s is the conformal (1 - alpha)
quantile of the scale each calibration dataset needs for its truth to fall in
[q'_lo, q'_hi] (split-conformal, finite-sample corrected). The calibration
datasets are IMD-family draws with their own seed: neither the training
families' stream nor the validation set that picked the checkpoint, and never
an OoMD family.

    python -m estimators.mist.calibration estimators/weights/mist_qr.safetensors
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from estimators.checkpoint import read_card, save_checkpoint
from estimators.synthetic import metadataset


def needed_scale(q_lo: np.ndarray, med: np.ndarray, q_hi: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Smallest s per dataset with truth in [med - s (med - q_lo), med + s (q_hi - med)]."""
    eps = 1e-9
    below = (med - truth) / np.maximum(med - q_lo, eps)
    above = (truth - med) / np.maximum(q_hi - med, eps)
    return np.maximum(np.maximum(below, above), 0.0)


def conformal_scale(scales: np.ndarray, level: float) -> float:
    n = len(scales)
    k = min(n, math.ceil((n + 1) * level))
    return float(max(1.0, np.sort(scales)[k - 1]))


def calibrate(weights: str, size: int = 600, seed: int = 424242, level: float = 0.9) -> dict:
    """Compute the spread scale for a mist_qr checkpoint and write it into its card (weights unchanged)."""
    from estimators.mist.adapter import MIST_QR  # imported by name: the workflow's code digest follows it

    est = MIST_QR(weights=weights, calibrated=False)
    # The model's own n and d ranges (its min_n comes from them too), drawn with a seed of their own.
    data = est.card["training"]["data_spec"]
    if int(seed) == int(data["val_seed"]):
        raise ValueError(
            f"calibration seed {seed} is the validation seed that picked this checkpoint: "
            "the calibration datasets must be fresh"
        )
    items = metadataset.validation_set({"n": data["n"], "d": data["d"], "val_size": size, "val_seed": seed})
    out = est.estimate_batch([(d["x"], d["y"]) for d in items])
    lo, hi = est.params["interval"]
    q_lo = np.array([e.quantiles[lo] for e in out])
    q_hi = np.array([e.quantiles[hi] for e in out])
    med = np.array([e.mi for e in out])
    truth = np.array([d["mi"] for d in items])
    s = conformal_scale(needed_scale(q_lo, med, q_hi, truth), level)
    before = float(((q_lo <= truth) & (truth <= q_hi)).mean())
    after = float(((med - s * (med - q_lo) <= truth) & (truth <= med + s * (q_hi - med))).mean())
    card = read_card(weights)
    card["calibration"] = {
        "spread_scale": s,
        "level": level,
        "interval": [lo, hi],
        "datasets": size,
        "seed": seed,
        "families": "imd",
        "n": list(data["n"]),
        "d": list(data["d"]),
        "coverage_before": before,
        "coverage_after": after,
        "swap_average": bool(est.params["swap_average"]),
    }
    for key in ("sha256", "weights_file", "n_parameters"):
        card.pop(key, None)
    save_checkpoint(est.model, weights, card)  # rewrites the same tensors and the updated card, atomically
    return card["calibration"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights")
    ap.add_argument("--size", type=int, default=600)
    ap.add_argument("--seed", type=int, default=424242)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(calibrate(args.weights, args.size, args.seed))


if __name__ == "__main__":
    main()
