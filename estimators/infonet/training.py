"""Train InfoNet by maximising the Donsker-Varadhan bound on a stream of Gaussian mixtures.

    from estimators.infonet.training import train
    train(params, "results/models/infonet.safetensors", "results/models/infonet_loss.csv")

`params` (all optional; see `DEFAULTS`):
- architecture: grid, width, depth, n_latents, heads, n_freq, smooth_sigma, clamp;
- data: k_min, k_max, mean_range, scale_min, scale_max, max_corr (the mixture family),
  n_min, n_max (rows per dataset, drawn per step, log-uniform), batch_size,
  n_permutations (for the marginal term of the bound);
- optimisation: lr, lr_min (cosine decay over the budget), warmup_steps, weight_decay, grad_clip;
- budget: steps and/or minutes (stops at whichever comes first; at least one is needed);
- bookkeeping: seed, save_every_minutes, log_every, val_seeds, null_reps (datasets per n for the
  null-offset table written to the final card);
- init: optional path of an InfoNet checkpoint of the same architecture to start from
  (fine-tuning; the card records it and counts its steps in `total_steps`).

Each step draws fresh data (no epochs). The table is built from n rows and the bound is scored
on n other rows of the same mixture. A checkpoint (safetensors + JSON card, atomic) is written
every `save_every_minutes` and at the end, so an interrupted run leaves a usable, labelled file.
"""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from tqdm import tqdm

from estimators.atomic import write_text
from estimators.checkpoint import load_checkpoint, save_checkpoint
from estimators.device import resolve_device
from estimators.infonet.data import MixtureSpec, rank_to_grid, training_batch
from estimators.infonet.model import ARCH_KEYS, DEFAULT_ARCH, InfoNet, dv_readout, estimate_dv

DEFAULTS: dict[str, Any] = {
    **DEFAULT_ARCH,
    **MixtureSpec().__dict__,
    "n_min": 200,
    "n_max": 2000,
    "batch_size": 16,
    "n_permutations": 4,
    "lr": 1e-3,
    "lr_min": 5e-5,
    "warmup_steps": 100,
    "weight_decay": 0.0,
    "grad_clip": 1.0,
    "steps": None,
    "minutes": None,
    "seed": 0,
    "save_every_minutes": 5.0,
    "log_every": 10,
    "val_seeds": 5,
    "init": None,
    "null_reps": 64,
}
LOG_FIELDS = ("step", "seconds", "n", "lr", "loss", "dv_mean", "grad_norm")


def resolve_params(params: dict[str, Any] | None) -> dict[str, Any]:
    params = dict(params or {})
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown InfoNet training parameters: {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    if p["steps"] is None and p["minutes"] is None:
        raise ValueError("InfoNet training needs a budget: set `steps` and/or `minutes`")
    if not 2 <= p["n_min"] <= p["n_max"]:
        raise ValueError(f"need 2 <= n_min <= n_max, got n_min={p['n_min']}, n_max={p['n_max']}")
    return p


def gaussian_check(
    model: InfoNet,
    n: int = 500,
    seeds: int = 5,
    n_permutations: int = 8,
    n_splits: int = 0,
    device: torch.device | str = "cpu",
    offset: float = 0.0,
) -> dict[str, float]:
    """Bivariate Gaussians, rho in {0, 0.1, ..., 0.9}: MAE, worst error, Spearman of the means.

    Read out as the adapter does (`n_splits` = 0: on the rows the table was built from;
    > 0: cross-fitted), minus `offset` (the null offset at this n, for the corrected read-out).
    """
    rhos = np.round(np.arange(10) / 10, 1)
    truth = -0.5 * np.log(1 - rhos**2)
    g = torch.Generator().manual_seed(12345)
    z = torch.randn(len(rhos) * seeds, n, 2, generator=g)
    r = torch.tensor(np.repeat(rhos, seeds), dtype=torch.float32)[:, None]
    xy = torch.stack([z[..., 0], r * z[..., 0] + torch.sqrt(1 - r**2) * z[..., 1]], -1)
    xy = rank_to_grid(xy).to(device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        est = estimate_dv(model, xy, n_permutations, n_splits).cpu().numpy().reshape(len(rhos), seeds) - offset
    model.train(was_training)
    means = est.mean(1)
    err = est - truth[:, None]
    return {
        "gauss_n": n,
        "gauss_seeds": seeds,
        "gauss_n_splits": n_splits,
        "gauss_mae": float(np.abs(err).mean()),
        "gauss_worst_abs_err": float(np.abs(err).max()),
        "gauss_bias": float(err.mean()),
        "gauss_spearman": float(spearmanr(means, truth)[0]),
        "gauss_means": [round(float(m), 4) for m in means],
    }


NULL_NS = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


def null_offsets(
    model: InfoNet,
    ns: tuple[int, ...] = NULL_NS,
    reps: int = 64,
    n_permutations: int = 8,
    device: torch.device | str = "cpu",
) -> dict[str, list[float]]:
    """Mean same-rows DV estimate on independent data, per n (`reps` datasets each).

    After the per-margin rank map, independent data have one law for every n (a uniformly
    random pairing of the ranks), so this is the estimator's bias at MI = 0 as a function of n
    alone: the adapter can subtract it (`null_correction=True`).
    """
    g = torch.Generator().manual_seed(777)
    out = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for n in ns:
            vals = []
            for s in range(0, reps, max(1, 8192 // n)):
                b = min(max(1, 8192 // n), reps - s)
                xy = rank_to_grid(torch.randn(b, n, 2, generator=g))
                order = xy[..., 0].argsort(-1)  # canonical order, as in the adapter
                xy = torch.gather(xy, 1, order[..., None].expand(-1, -1, 2)).to(device)
                vals.append(estimate_dv(model, xy, n_permutations, 0))
            out.append(round(float(torch.cat(vals).mean()), 5))
    model.train(was_training)
    return {"n": list(ns), "mi": out, "reps": reps}


def _lr_at(p: dict[str, Any], step: int, progress: float) -> float:
    if step < p["warmup_steps"]:
        return p["lr"] * (step + 1) / p["warmup_steps"]
    return p["lr_min"] + 0.5 * (p["lr"] - p["lr_min"]) * (1 + math.cos(math.pi * min(progress, 1.0)))


def _write_log(rows: list[dict[str, Any]], path: Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=LOG_FIELDS)
    w.writeheader()
    w.writerows(rows)
    write_text(path, buf.getvalue())


def train(
    params: dict[str, Any] | None,
    out_weights: str | Path,
    log_csv: str | Path,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Train an InfoNet within the budget; write the checkpoint and the loss CSV. Returns the card."""
    p = resolve_params(params)
    dev = resolve_device(device)
    torch.manual_seed(p["seed"])
    gen = torch.Generator(device=dev).manual_seed(p["seed"])
    arch = {k: p[k] for k in ARCH_KEYS}
    model = InfoNet.from_arch(arch).to(dev)
    init_info = None
    if p["init"] is not None:
        init_card = load_checkpoint(model, p["init"], device=dev)
        init_info = {
            "path": str(p["init"]),
            "sha256": init_card.get("sha256"),
            "steps": init_card.get("total_steps", init_card.get("steps", 0)),
        }
    opt = torch.optim.AdamW(model.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
    spec = MixtureSpec.from_params(p)
    out_weights, log_csv = Path(out_weights), Path(log_csv)
    log_n_min, log_n_max = math.log(p["n_min"]), math.log(p["n_max"])

    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    last_save = t0
    step, ema = 0, None
    max_steps = p["steps"] if p["steps"] is not None else float("inf")
    max_seconds = 60.0 * p["minutes"] if p["minutes"] is not None else float("inf")
    total = p["steps"] if p["steps"] is not None else None
    bar = tqdm(total=total, desc="train infonet", disable=not progress, mininterval=2.0)

    def card(final: bool) -> dict[str, Any]:
        return {
            "model": "infonet",
            "architecture": arch,
            "training": p,
            "steps": step,
            "init": init_info,
            "total_steps": step + (init_info["steps"] if init_info else 0),
            "train_seconds": round(time.perf_counter() - t0, 1),
            "final": final,
            "device": str(dev),
            "torch_threads": torch.get_num_threads(),
            "input_transform": "per-margin rank r -> 2 r / (n + 1) - 1, onto the whole grid [-1, 1]",
            "objective": "Donsker-Varadhan bound on held-out rows of the same mixture",
        }

    def save(final: bool) -> dict[str, Any]:
        c = card(final)
        c["validation"] = gaussian_check(model, seeds=p["val_seeds"], device=dev)
        c["validation_crossfit"] = gaussian_check(model, seeds=p["val_seeds"], n_splits=2, device=dev)
        if final:
            c["null_offset"] = tab = null_offsets(model, reps=p["null_reps"], device=dev)
            off = float(np.interp(np.log(500), np.log(tab["n"]), tab["mi"]))
            # what the adapter returns by default (same rows, null offset subtracted)
            c["validation_null_corrected"] = gaussian_check(model, seeds=p["val_seeds"], device=dev, offset=off)
        save_checkpoint(model, out_weights, c)
        _write_log(rows, log_csv)
        return c

    model.train()
    while True:
        elapsed = time.perf_counter() - t0
        if step >= max_steps or elapsed >= max_seconds:
            break
        frac = max(step / max_steps, elapsed / max_seconds)
        lr = _lr_at(p, step, frac)
        for grp in opt.param_groups:
            grp["lr"] = lr
        n = int(round(math.exp(log_n_min + (log_n_max - log_n_min) * torch.rand(1, generator=gen, device=dev).item())))
        enc, ev = training_batch(p["batch_size"], n, spec, gen, device=dev)
        perms = torch.rand(p["n_permutations"], n, generator=gen, device=dev).argsort(-1)
        dv = dv_readout(model(enc), ev[..., 0], ev[..., 1], perms)
        loss = -dv.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), p["grad_clip"])
        opt.step()
        step += 1
        val = -loss.item()
        ema = val if ema is None else 0.98 * ema + 0.02 * val
        if step % p["log_every"] == 0 or step == 1:
            rows.append(
                {
                    "step": step,
                    "seconds": round(time.perf_counter() - t0, 2),
                    "n": n,
                    "lr": f"{lr:.3g}",
                    "loss": round(loss.item(), 5),
                    "dv_mean": round(ema, 5),
                    "grad_norm": round(float(gnorm), 4),
                }
            )
            bar.set_postfix(dv=f"{ema:.3f}", n=n)
        bar.update(1)
        if time.perf_counter() - last_save > 60.0 * p["save_every_minutes"]:
            save(final=False)
            last_save = time.perf_counter()
    bar.close()
    return save(final=True)
