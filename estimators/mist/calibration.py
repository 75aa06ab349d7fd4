"""Conformal calibration of MIST_QR's interval (and the paper-style MIST_QR's) on held-out IMD datasets.

Pinball training on a small CPU budget leaves the quantiles too tight. One
scalar s >= 1 widens every quantile around the median, q'_tau = m + s (q_tau - m),
which keeps them ordered (non-crossing). s is the conformal (1 - alpha)
quantile of the scale each calibration dataset needs for its truth to fall in
[q'_lo, q'_hi] (split-conformal, finite-sample corrected).

The calibration datasets have a seed of their own (neither the training stream
nor the validation set that picked the checkpoint) and come from two sources:
- fresh draws of the model's own meta-distribution (its n and d ranges, the
  IMD families and, at the model's `beyond_frac`, the `train_beyond` ones);
- a third (`calib_share`) from the `calib` families, which are in neither the
  training nor any test split: data the model never saw, so that the scale also
  covers what is new to it, without touching a test split.
A scale per cell of a novelty score (the model's distance from its own
nearest-neighbour input) was tried on these data and covered no better, so s
is one number.

    python -m estimators.mist.calibration estimators/weights/mist_qr.safetensors
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from estimators.checkpoint import read_card, save_checkpoint
from estimators.synthetic import metadataset
from estimators.synthetic.families import split_families


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


CALIB_SHARE = 1 / 3  # share of the calibration datasets drawn from the `calib` families


def calibration_set(data: dict, size: int, seed: int, calib_share: float = CALIB_SHARE) -> list[dict]:
    """The calibration datasets for a model trained on the meta-dataset spec `data` (module docstring)."""
    n_calib = int(round(size * calib_share))
    keys = ("n", "d", "beyond_frac", "beyond_d")
    spec = {k: data[k] for k in keys if k in data}
    items = metadataset.validation_set({**spec, "val_size": size - n_calib, "val_seed": seed})
    if n_calib:
        cspec = metadataset.full_spec({**spec, "beyond_frac": 0.0, "d": spec.get("beyond_d") or spec["d"]})
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7]))
        lo, hi = (int(v) for v in cspec["n"])
        fams = split_families("calib")
        items += [metadataset.draw_dataset(cspec, fams, int(rng.integers(lo, hi + 1)), rng) for _ in range(n_calib)]
    return items


def calibrate(
    weights: str, size: int = 600, seed: int = 424242, level: float = 0.9, calib_share: float = CALIB_SHARE
) -> dict:
    """Compute the spread scale for a quantile checkpoint (mist_qr, mist_paper_qr) and write it into
    its card (weights unchanged)."""
    # Imported by name: the workflow's code digest follows them.
    from estimators.mist.adapter import MIST_QR
    from estimators.mist_paper.adapter import MISTPaperQR

    kind = read_card(weights).get("kind")
    classes = {"mist_qr": MIST_QR, "mist_paper_qr": MISTPaperQR}
    if kind not in classes:
        raise ValueError(f"{weights} is a {kind!r} checkpoint; only {', '.join(classes)} ones are calibrated")
    est = classes[kind](weights=weights, calibrated=False)
    # The model's own n and d ranges (its min_n comes from them too), drawn with a seed of their own.
    data = est.card["training"]["data_spec"]
    if int(seed) == int(data["val_seed"]):
        raise ValueError(
            f"calibration seed {seed} is the validation seed that picked this checkpoint: "
            "the calibration datasets must be fresh"
        )
    items = calibration_set(data, size, seed, calib_share)
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
        "families": "imd" + (" + train_beyond" if data.get("beyond_frac") else "") + " + calib",
        "calib_share": calib_share,
        "beyond_frac": float(data.get("beyond_frac", 0.0)),
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
    ap.add_argument("--calib-share", type=float, default=CALIB_SHARE)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(calibrate(args.weights, args.size, args.seed, calib_share=args.calib_share))


if __name__ == "__main__":
    main()
