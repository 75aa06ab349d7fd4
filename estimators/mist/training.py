"""Training MIST (MSE) and MIST_QR (pinball loss, tau ~ U(0, 1)).

    train(params, out_weights, log_csv, device="auto")

`params` (all optional; defaults in DEFAULTS):
- quantile: true trains MIST_QR;
- architecture: "mist" (ours: canonical-variate tokens and side statistics) or "paper" (the
  paper's design on z-scored raw rows, `estimators.mist_paper`): it picks the featuriser and the
  network, and the defaults of `features` and `model` (the paper design's are its dataclasses');
- data: the meta-dataset spec (`estimators.synthetic.metadataset`): training families only,
  validation from IMD families only;
- features: normalisation (copula | standard), k_pairs, side_input;
- model: width, heads, inducing, n_isab, ff_mult, head_hidden;
- optimiser: lr, weight_decay, eps, clip, warmup_steps, final_lr_frac, batch_size;
- budget: max_steps and/or max_minutes (whichever comes first), val_every;
  schedule_by: what the cosine schedule follows, "first" (the larger of the two
  progress fractions), "steps" or "minutes";
- workers (data-loader processes: fresh datasets, or with `data.shards` the shards' datasets,
  featurised), replay_pool, threads, seed, resume;
- init_weights: start from a checkpoint (a later training stage); ema_decay: validate and
  save an exponential moving average of the weights instead of the raw weights;
- calibrate, calib_size: for MIST_QR, the conformal spread scale of the interval
  (estimators.mist.calibration) on held-out IMD datasets, written into the card.

Datasets, fresh or from the shards, are featurised by worker processes (`workers`);
every batch shares one n, so no padding is needed. When no fresh batch is ready the step
replays one from a pool of recent batches (`replay_pool`, 0 = never), so the
trainer does not idle on a busy CPU; which batches get replayed then depends
on the machine's load, so such runs are not bit-reproducible. With one worker
(or `workers: 0`), `replay_pool: 0`, `schedule_by: steps` and a step budget that
binds before the minute budget, a run is reproducible from its seed: the same
weights, byte for byte (the card records which budget stopped the run), in the
same thread environment (OMP_NUM_THREADS, which Snakemake sets to the job's
threads, changes torch's CPU rounding even at one torch thread). The best checkpoint on the
validation split is saved with `estimators.checkpoint.save_checkpoint`; a
resume file next to the loss CSV lets an interrupted run continue.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch.utils.data import IterableDataset

from estimators.atomic import atomic_path, write_text
from estimators.checkpoint import card_path, save_checkpoint
from estimators.code_digest import code_digest
from estimators.device import resolve_device
from estimators.mist.features import FeatureConfig, batch_features
from estimators.mist.model import TAU_GRID, Architecture, MISTNet
from estimators.synthetic import bins, metadataset

VAL_TAUS = tuple(round(float(t), 10) for t in np.linspace(0.05, 0.95, 19))

DEFAULTS: dict[str, Any] = {
    "quantile": False,
    "architecture": "mist",  # mist | paper (estimators.mist_paper)
    "seed": 0,
    "data": {},
    "features": {
        "normalisation": "copula",
        "k_pairs": 8,
        "side_input": True,
        "max_rows": 128,
        "shrink": 0.1,
        "extra_shrinks": [0.02, 0.5],
    },
    "model": {"width": 64, "heads": 4, "inducing": 16, "n_isab": 2, "ff_mult": 2, "head_hidden": 128},
    "batch_size": 64,
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "eps": 1e-8,
    "clip": 1.0,
    "warmup_steps": 200,
    "final_lr_frac": 0.05,
    "max_steps": 1_000_000,
    "max_minutes": 5.0,
    "schedule_by": "first",  # first | steps | minutes: what the cosine schedule's progress follows
    "val_every": 250,
    "taus_per_dataset": 8,
    "swap_augment": True,
    "workers": 1,
    "replay_pool": 256,
    "threads": 1,
    "resume": True,
    # start from this checkpoint (fine-tuning); it is validated first, so it is kept if never beaten
    "init_weights": None,
    "calibrate": True,  # MIST_QR: conformal spread scale on held-out IMD data after training
    "calib_size": 600,
    # Polyak/EMA average of the weights (0 = off). Validation, the saved checkpoint and resume all use the
    # average: at small n the raw weights' validation MSE jumps by 2x between checks late in training,
    # so picking the "best" raw checkpoint mostly picks noise.
    "ema_decay": 0.0,
}


ARCHITECTURES = ("mist", "paper")
# Checkpoint kinds by architecture: (point estimate, quantiles).
KINDS = {"mist": ("mist", "mist_qr"), "paper": ("mist_paper", "mist_paper_qr")}


def merge_params(params: dict[str, Any] | None) -> dict[str, Any]:
    out = copy.deepcopy(DEFAULTS)
    arch = (params or {}).get("architecture", out["architecture"])
    if arch not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got {arch!r}")
    if arch != "mist":  # MIST's feature and model defaults mean nothing to another design
        out["features"], out["model"] = {}, {}
    for k, v in (params or {}).items():
        if k not in out:
            raise ValueError(f"unknown MIST training parameter {k!r}; known: {', '.join(sorted(out))}")
        if isinstance(out[k], dict) and isinstance(v, dict):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


class FeatureStream(IterableDataset):
    """Infinite stream of featurised training batches (one n per batch): fresh datasets, or,
    with `shards`, a fixed meta-dataset epoch after epoch. `part` = (worker, workers) takes
    that worker's share of the shards; the shard order follows `order_seed`, after `skip`
    batches (a resumed run), while `seed` drives everything else (row subsets, swaps)."""

    def __init__(
        self,
        data_spec: dict[str, Any],
        fcfg: FeatureConfig,
        batch_size: int,
        seed: int,
        swap_augment: bool,
        shards: list[str] | None = None,
        part: tuple[int, int] = (0, 1),
        skip: int = 0,
        order_seed: int | None = None,
    ) -> None:
        self.data_spec, self.fcfg, self.batch_size = data_spec, fcfg, batch_size
        self.seed, self.swap_augment, self.shards, self.part = seed, swap_augment, shards, part
        self.skip, self.order_seed = skip, seed if order_seed is None else order_seed

    def for_worker(self, worker: int, workers: int) -> FeatureStream:
        return FeatureStream(
            self.data_spec,
            self.fcfg,
            self.batch_size,
            self.seed * 10 + worker,
            self.swap_augment,
            self.shards,
            (worker, workers),
            self.skip // workers,
            self.order_seed * 10 + worker,
        )

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = info.id if info is not None else 0
        torch.set_num_threads(1)
        # One BLAS thread too: the features are small LAPACK/BLAS calls, which a multi-threaded BLAS
        # makes 1.3-2x slower in wall time (25x for one 300 x 48 product) when the cores are busy
        # with the trainer, as they are. Snakemake jobs already get this from OMP_NUM_THREADS. With
        # `workers: 0` this runs in the trainer's process and limits its numpy BLAS too (not torch).
        threadpool_limits(1)
        seed = self.seed * 1000 + wid
        rng = np.random.default_rng(np.random.SeedSequence([seed, 77]))
        if self.shards:
            batches = metadataset.shard_batches(
                self.shards, self.data_spec, self.order_seed * 1000 + wid, self.part, self.skip
            )
        else:
            batches = metadataset.stream_batches(self.data_spec, self.batch_size, seed)
        for batch in batches:
            swap = rng.random(len(batch)) < 0.5 if self.swap_augment else None
            tok, ctx, g = featurise([(d["x"], d["y"]) for d in batch], self.fcfg, rng, swap)
            mi = np.array([d["mi"] for d in batch], dtype=np.float32)
            yield torch.from_numpy(tok), torch.from_numpy(ctx), torch.from_numpy(g), torch.from_numpy(mi)


def featurise(datasets, fcfg, rng: np.random.Generator | None = None, swap: np.ndarray | None = None):
    """(tokens, context, side input) of datasets sharing n, by the design the feature config belongs to."""
    if isinstance(fcfg, FeatureConfig):
        return batch_features(datasets, fcfg, rng, swap)
    from estimators.mist_paper.features import batch_features as paper_features

    return paper_features(datasets, fcfg, rng, swap)


def _produce(stream: FeatureStream, queue, parent: int) -> None:
    """Worker process: push featurised batches (numpy) into `queue` until the trainer is gone."""
    import queue as _q

    torch.set_num_threads(1)
    for item in stream:
        item = tuple(t.numpy() for t in item)
        while True:
            if os.getppid() != parent:  # trainer killed: do not linger as an orphan
                return
            try:
                queue.put(item, timeout=5)
                break
            except _q.Full:
                continue


class BatchSource:
    """Fresh batches from worker processes, topped up from a replay pool.

    The trainer never idles waiting for data: when no fresh batch is ready it
    trains on a random batch from the pool of the last `pool` fresh batches
    (with a random sign flip of every canonical pair, which leaves MI
    unchanged). On a busy shared CPU this keeps the optimiser busy while the
    generators catch up; with `pool = 0` every step waits for fresh data.
    """

    def __init__(self, stream: FeatureStream, workers: int, pool: int, k_pairs: int, seed: int) -> None:
        import multiprocessing as mp

        self.pool_size, self.k = int(pool), int(k_pairs)
        self.pool: list = []
        self.rng = np.random.default_rng(seed)
        self.fresh = 0
        self.reused = 0
        self.procs = []
        if workers > 0:
            ctx = mp.get_context("spawn")  # not fork: BMI imports JAX, whose threads make fork unsafe
            self.queue = ctx.Queue(maxsize=8)
            for w in range(workers):
                proc = ctx.Process(
                    target=_produce, args=(stream.for_worker(w, workers), self.queue, os.getpid()), daemon=True
                )
                proc.start()
                self.procs.append(proc)
        else:
            self.queue = None
            self.inline = iter(stream)

    def _fresh(self, block: bool):
        import queue as _q

        if self.queue is None:
            return tuple(t.numpy() for t in next(self.inline))
        if not block:
            try:
                return self.queue.get(block=False)
            except _q.Empty:
                return None
        # Poll so that a generator that died (bad spec, import error) fails the run instead of hanging it.
        for _ in range(600):
            try:
                return self.queue.get(timeout=1.0)
            except _q.Empty:
                dead = [p.exitcode for p in self.procs if not p.is_alive()]
                if len(dead) == len(self.procs):
                    raise RuntimeError(
                        f"every data generator process exited (exit codes {dead}); see the log above for its traceback"
                    ) from None
        raise RuntimeError("no training data from the generator processes for 10 minutes")

    def next(self):
        item = self._fresh(block=not self.pool or self.pool_size == 0)
        if item is not None:
            self.fresh += 1
            if self.pool_size:
                if len(self.pool) < self.pool_size:
                    self.pool.append(item)
                else:
                    self.pool[int(self.rng.integers(self.pool_size))] = item
            return tuple(torch.from_numpy(np.array(a)) for a in item)
        self.reused += 1
        tok, ctx, g, mi = (torch.from_numpy(np.array(a)) for a in self.pool[int(self.rng.integers(len(self.pool)))])
        sign = torch.from_numpy(self.rng.choice([-1.0, 1.0], size=(tok.shape[0], 1, self.k)).astype(np.float32))
        tok[:, :, : self.k] *= sign
        tok[:, :, self.k : 2 * self.k] *= sign
        return tok, ctx, g, mi

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.join(timeout=5)


def pinball(pred: torch.Tensor, target: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """Mean pinball loss; pred and tau (B, T), target (B,)."""
    d = target[:, None] - pred
    return torch.maximum((tau - 1) * d, tau * d).mean()


def _param_groups(model: torch.nn.Module, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") or "inducing" in name or "seed" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Validation:
    """Fixed featurised IMD validation datasets, grouped by n."""

    def __init__(self, data_spec: dict[str, Any], fcfg: FeatureConfig) -> None:
        items = metadataset.validation_set(data_spec)
        self.mi = np.array([d["mi"] for d in items])
        self.n = np.array([d["n"] for d in items])
        self.groups = []
        for n in np.unique(self.n):
            idx = np.flatnonzero(self.n == n)
            tok, ctx, g = featurise([(items[i]["x"], items[i]["y"]) for i in idx], fcfg)
            self.groups.append((idx, torch.from_numpy(tok), torch.from_numpy(ctx), torch.from_numpy(g)))

    @torch.no_grad()
    def predict(self, model: MISTNet, device, taus=None) -> np.ndarray:
        model.eval()
        out = np.zeros((len(self.mi), len(taus))) if taus is not None else np.zeros(len(self.mi))
        for idx, tok, ctx, g in self.groups:
            tau = None
            if taus is not None:
                tau = torch.tensor(taus, dtype=torch.float32, device=device).expand(len(idx), -1)
            pred = model(tok.to(device), ctx.to(device), g.to(device), tau)
            out[idx] = pred.cpu().numpy()
        model.train()
        return out

    def metrics(self, model: MISTNet, device) -> dict[str, float]:
        res: dict[str, float] = {}
        if model.arch.quantile:
            q = np.sort(self.predict(model, device, VAL_TAUS), axis=1)
            taus = np.array(VAL_TAUS)
            d = self.mi[:, None] - q
            res["pinball"] = float(np.maximum((taus - 1) * d, taus * d).mean())
            point = q[:, VAL_TAUS.index(0.5)]
            lo, hi = q[:, 0], q[:, -1]
            res["coverage90"] = float(((lo <= self.mi) & (self.mi <= hi)).mean())
            res["width90"] = float((hi - lo).mean())
        else:
            point = self.predict(model, device)
        sq = (point - self.mi) ** 2
        res["mse"] = float(sq.mean())
        res.update({f"mse_{label}": v for label, v in bins.mse_by_bin(sq, self.n).items() if label != "mse"})
        res["loss"] = res["pinball"] if model.arch.quantile else res["mse"]
        return res


def _lr_factor(progress: float, step: int, p: dict[str, Any]) -> float:
    warm = min(1.0, (step + 1) / max(1, p["warmup_steps"]))
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return warm * (p["final_lr_frac"] + (1 - p["final_lr_frac"]) * cos)


def _make_ema(model: MISTNet, decay: float, state: dict | None = None):
    """The weight average that is validated and saved (None when off); it starts from the
    model's current weights, or from `state` when resuming."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))
    if state is not None:
        ema.load_state_dict(state)
    return ema


def build_model(p: dict[str, Any]) -> tuple[MISTNet, FeatureConfig]:
    if p["architecture"] == "paper":
        from estimators.mist_paper.features import PaperFeatures
        from estimators.mist_paper.model import PaperArchitecture, PaperNet

        arch = PaperArchitecture(**p["model"], quantile=bool(p["quantile"]))
        return PaperNet(arch), PaperFeatures.from_dict(p["features"])
    fcfg = FeatureConfig(**p["features"])
    arch = Architecture(
        token_dim=fcfg.token_dim,
        context_dim=fcfg.context_dim,
        quantile=bool(p["quantile"]),
        residual=fcfg.side_input,
        **p["model"],
    )
    return MISTNet(arch), fcfg


# Context inputs a fine-tune may add to its starting checkpoint: each appends its entries to the
# context, in this order, so the old context is a prefix of the new one (`discrete_recode` and
# `align_shuffle` change the inputs' values, not their number).
_WIDENING = ("align_stats", "knn_stats", "tie_stats")
_WIDENING_VALUES = ("align_shuffle", "discrete_recode")


def load_init(model: MISTNet, fcfg: FeatureConfig, path: str, device: str = "cpu") -> None:
    """Load `init_weights` into `model`. A checkpoint trained without some of the appended context
    inputs (`_WIDENING`), and otherwise on the same features and architecture, also fits: the new
    context entries get zero weights, so training starts from exactly the old model's predictions
    on the old inputs. Anything else must match."""
    from estimators.checkpoint import CheckpointError, load_checkpoint, read_card

    card = read_card(path)
    if not isinstance(fcfg, FeatureConfig):  # another design: only its own architecture and inputs fit
        if card.get("architecture") != model.arch.to_dict() or card.get("features") != fcfg.to_dict():
            raise CheckpointError(f"init_weights {path}: its features or architecture differ from this run's")
        load_checkpoint(model, path, device=device)
        return
    old_cfg = FeatureConfig.from_dict(dict(card.get("features", {})))
    old_on = [bool(getattr(old_cfg, k)) for k in _WIDENING]
    new_on = [bool(getattr(fcfg, k)) for k in _WIDENING]
    if old_on == new_on and old_cfg.context_dim == fcfg.context_dim:
        load_checkpoint(model, path, device=device)
        return
    first_new = next((i for i, (a, b) in enumerate(zip(old_on, new_on)) if b and not a), len(_WIDENING))
    plain = FeatureConfig(
        **{
            **fcfg.to_dict(),
            **{k: getattr(old_cfg, k) for k in (*_WIDENING, *_WIDENING_VALUES)},
        }
    )
    if (
        plain != old_cfg
        or any(a and not b for a, b in zip(old_on, new_on))
        or any(old_on[first_new:])  # an old input after a new one: the old context is no prefix
        or card.get("architecture") != {**model.arch.to_dict(), "context_dim": old_cfg.context_dim}
    ):
        raise CheckpointError(
            f"init_weights {path}: its features or architecture differ from this run's by more than "
            f"appended context inputs ({', '.join(_WIDENING)})"
        )
    old = MISTNet(Architecture.from_dict(card["architecture"]))
    load_checkpoint(old, path, device=device)
    state = old.state_dict()
    c0, c1, w = old_cfg.context_dim, fcfg.context_dim, model.arch.width
    ctx_w = state["embed_ctx.weight"]
    state["embed_ctx.weight"] = torch.cat([ctx_w, ctx_w.new_zeros(ctx_w.shape[0], c1 - c0)], dim=1)
    head_w = state["head.0.weight"]  # input: [pooled (w) | context | tau (MIST_QR)]
    state["head.0.weight"] = torch.cat(
        [head_w[:, : w + c0], head_w.new_zeros(head_w.shape[0], c1 - c0), head_w[:, w + c0 :]], dim=1
    )
    model.load_state_dict(state, strict=True)
    added = [k for k, a, b in zip(_WIDENING, old_on, new_on) if b and not a]
    print(f"init_weights {path}: widened by {c1 - c0} zero-weight inputs ({', '.join(added)})", file=sys.stderr)


def check_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """The merged parameters, each part checked (data spec, families, features, architecture):
    the workflow calls this when it parses the config, long before the training job runs."""
    p = merge_params(params)
    if p["schedule_by"] not in ("first", "steps", "minutes"):
        raise ValueError(f"schedule_by must be first, steps or minutes, got {p['schedule_by']!r}")
    spec = data_spec(p)
    metadataset.train_families(spec)
    metadataset.val_families(spec)  # leakage guard at parse time, not after the shard jobs ran
    if spec["shards"] and spec["shards"] % max(1, int(p["workers"])):
        raise ValueError(
            f"data.shards ({spec['shards']}) must be a multiple of workers ({p['workers']}): "
            "each data worker reads its own, equal share of the shards"
        )
    build_model(p)
    return p


def data_spec(p: dict[str, Any]) -> dict[str, Any]:
    """The meta-dataset spec a run trains on; from shards (`data.shards` > 0), one n per batch."""
    if int(metadataset.full_spec(p["data"])["shards"]):
        return metadataset.training_shard_spec(p["data"], int(p["batch_size"]))
    return metadataset.full_spec(p["data"])


def train(
    params: dict[str, Any] | None, out_weights, log_csv, device: str = "auto", shards: list[str] | None = None
) -> dict[str, Any]:
    """Train MIST or MIST_QR; write the best checkpoint and the loss curve. Returns the final card.
    With `data.shards` = K > 0, `shards` are the K files of the run's meta-dataset
    (`estimators.synthetic.metadataset.shard_paths`; the workflow's `metadataset_shard` rule builds them)."""
    p = check_params(params)
    spec = data_spec(p)
    n_shards = spec["shards"]
    if n_shards and len(shards or []) != n_shards:
        raise ValueError(
            f"data.shards = {n_shards}: pass the {n_shards} shard files of this meta-dataset "
            f"(got {len(shards or [])}); build them with `python -m estimators.synthetic.metadataset --build`"
        )
    if not n_shards and shards:
        raise ValueError("shard files given, but data.shards is 0 (the run streams fresh datasets)")
    # Here, not in the data worker, so that a stale or broken shard fails with its own message.
    shards = metadataset.ordered_shards(shards, spec) if n_shards else None
    torch.set_num_threads(int(p["threads"]))
    torch.manual_seed(int(p["seed"]))
    dev = resolve_device(device)
    model, fcfg = build_model(p)
    model.to(dev)
    opt = torch.optim.AdamW(_param_groups(model, p["weight_decay"]), lr=p["lr"], eps=p["eps"])
    ema_decay, ema_state = float(p["ema_decay"]), None
    if ema_decay and not 0.0 < ema_decay < 1.0:  # checked before anything on disk is touched
        raise ValueError(f"ema_decay must be in (0, 1) or 0 (off), got {ema_decay}")
    log_csv = Path(log_csv)
    resume_path = log_csv.with_suffix(".resume.pt")
    # The resume state belongs to one unfinished run of these parameters and this code: a finished
    # run, or any change, starts afresh. It carries the best weights and the loss-curve rows, because
    # Snakemake deletes a job's outputs before running it again.
    fingerprint = f"{p!r} code={code_digest(None, ['estimators.mist.training'])}"
    step, seen, elapsed0, best = 0, 0, 0.0, float("inf")
    fresh0, reused0 = 0, 0  # batches read (fresh) and replayed before a resume
    best_metrics: dict[str, float] = {}
    best_state, best_card, rows = None, None, []
    if p["resume"] and resume_path.is_file():
        state = torch.load(resume_path, map_location=dev, weights_only=True)
        if state.get("fingerprint") == fingerprint and not state.get("complete"):
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            ema_state = state["ema"]
            step, seen, elapsed0 = int(state["step"]), int(state["seen"]), float(state["elapsed"])
            fresh0, reused0 = int(state["fresh"]), int(state["reused"])
            best, best_state = float(state["best"]), state["best_model"]
            best_card, rows = json.loads(state["best_card"]), json.loads(state["rows"])
            best_metrics = dict(best_card["validation"]) if best_card else {}  # None: no finite validation yet
            print(f"resuming from step {step} ({resume_path})", file=sys.stderr)
        else:
            why = "a finished run" if state.get("complete") else "other parameters or code"
            print(f"starting afresh: {resume_path} holds {why}", file=sys.stderr)
    if best_state is not None:  # the best checkpoint so far, even if the resumed run never beats it
        saved, _ = build_model(p)
        saved.load_state_dict(best_state)
        save_checkpoint(saved, out_weights, best_card)
    if step == 0 and p["init_weights"]:
        load_init(model, fcfg, p["init_weights"], device=str(dev))
    ema = _make_ema(model, ema_decay, ema_state)  # after loading: it averages from these weights

    val = Validation(spec, fcfg)
    base = int(p["seed"]) * 100_003
    # A resumed run draws new row subsets and swaps, but continues its pass over the shards after
    # the batches it read (exactly with one data worker; replayed batches are not reads).
    stream = FeatureStream(
        spec, fcfg, int(p["batch_size"]), base + step, bool(p["swap_augment"]), shards, skip=fresh0, order_seed=base
    )
    # A replayed batch flips the signs of MIST's canonical pairs; other designs have none (k = 0).
    k_pairs = getattr(fcfg, "k_pairs", 0)
    source = BatchSource(stream, int(p["workers"]), int(p["replay_pool"]), k_pairs, int(p["seed"]) + step)
    quantile = bool(p["quantile"])
    kind = KINDS[p["architecture"]][int(quantile)]
    max_steps, max_sec = int(p["max_steps"]), 60.0 * float(p["max_minutes"] or 1e9)
    gen = torch.Generator().manual_seed(int(p["seed"]) + step)
    fields = [
        "step",
        "datasets",
        "minutes",
        "lr",
        "train_loss",
        "val_loss",
        "val_mse",
        "val_mse_[10,100]",
        "val_mse_(100,300]",
        "val_mse_(300,500]",
        "val_coverage90",
        "val_width90",
        "datasets_per_s",
        "fresh_batches",
        "replayed_batches",
    ]
    log_csv.parent.mkdir(parents=True, exist_ok=True)
    fh = open(log_csv, "w", newline="")
    writer = csv.DictWriter(fh, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)

    def evaluated():  # the weights that are validated and saved
        return model if ema is None else ema.module

    def card(metrics):
        return {
            "kind": kind,
            "architecture": model.arch.to_dict(),
            "features": fcfg.to_dict(),
            "normalisation": fcfg.normalisation,
            "training": {
                "params": p,
                "data_spec": spec,
                "steps": step,
                "datasets_seen": seen,
                # from shards, every epoch reads the same meta_dataset_size datasets again
                **(
                    {"meta_dataset_size": n_shards * int(spec["per_shard"])}
                    if n_shards
                    else {"fresh_datasets": (fresh0 + source.fresh) * int(p["batch_size"])}
                ),
                "minutes": round((elapsed0 + time.perf_counter() - t0) / 60, 2),
            },
            "validation": metrics,
            "tau_grid": list(TAU_GRID) if quantile else None,
        }

    def save_resume(complete: bool) -> None:
        with atomic_path(resume_path) as tmp:
            torch.save(
                {
                    "model": model.state_dict(),
                    "opt": opt.state_dict(),
                    "step": step,
                    "seen": seen,
                    "fresh": fresh0 + source.fresh,
                    "reused": reused0 + source.reused,
                    "ema": ema.state_dict() if ema is not None else None,
                    "elapsed": elapsed0 + time.perf_counter() - t0,
                    "best": best,
                    "best_model": best_state,
                    "best_card": json.dumps(best_card),
                    "rows": json.dumps(rows),
                    "fingerprint": fingerprint,
                    "complete": complete,
                },
                tmp,
            )

    def validate(train_loss: float, rate: float):
        nonlocal best, best_metrics, best_state, best_card
        m = val.metrics(evaluated(), dev)
        if m["loss"] < best:
            best, best_metrics = m["loss"], dict(m, step=step)
            best_card = card(best_metrics)
            best_state = {k: v.detach().clone() for k, v in evaluated().state_dict().items()}
            save_checkpoint(evaluated(), out_weights, best_card)
        row = {
            "step": step,
            "datasets": seen,
            "minutes": round((elapsed0 + time.perf_counter() - t0) / 60, 3),
            "lr": opt.param_groups[0]["lr"],
            "train_loss": train_loss,
            "val_loss": m["loss"],
            "val_mse": m["mse"],
            "val_mse_[10,100]": m["mse_[10,100]"],
            "val_mse_(100,300]": m["mse_(100,300]"],
            "val_mse_(300,500]": m["mse_(300,500]"],
            "val_coverage90": m.get("coverage90", ""),
            "val_width90": m.get("width90", ""),
            "datasets_per_s": rate,
            "fresh_batches": fresh0 + source.fresh,
            "replayed_batches": reused0 + source.reused,
        }
        rows.append(row)
        writer.writerow(row)
        fh.flush()
        save_resume(complete=False)
        return m

    from tqdm import tqdm

    t0 = time.perf_counter()
    bar = tqdm(
        total=max_steps if max_steps < 1_000_000 else None,
        initial=step,
        desc=kind,
        mininterval=10,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    run_loss, run_n, win_t, win_seen = 0.0, 0, time.perf_counter(), 0
    if step == 0 and p["init_weights"]:
        validate(float("nan"), 0.0)  # the starting checkpoint competes for "best"
    model.train()
    last_m: dict[str, float] = {}
    while True:
        elapsed = elapsed0 + time.perf_counter() - t0
        if step >= max_steps or elapsed >= max_sec:
            break
        tok, ctx, g, mi = source.next()
        # The step fraction alone keeps the schedule independent of the machine's speed (reproducible).
        progress = {"steps": step / max_steps, "minutes": elapsed / max_sec}.get(
            p["schedule_by"], max(step / max_steps, elapsed / max_sec)
        )
        for grp in opt.param_groups:
            grp["lr"] = p["lr"] * _lr_factor(progress, step, p)
        tok, ctx, g, mi = tok.to(dev), ctx.to(dev), g.to(dev), mi.to(dev)
        if quantile:
            tau = torch.rand(len(mi), int(p["taus_per_dataset"]), generator=gen).to(dev)
            loss = pinball(model(tok, ctx, g, tau), mi, tau)
        else:
            loss = torch.mean((model(tok, ctx, g) - mi) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), p["clip"])
        opt.step()
        if ema is not None:
            ema.update_parameters(model)
        step += 1
        seen += len(mi)
        win_seen += len(mi)
        run_loss += loss.item()
        run_n += 1
        bar.update(1)
        if step % int(p["val_every"]) == 0:
            rate = win_seen / (time.perf_counter() - win_t)
            last_m = validate(run_loss / run_n, rate)
            bar.set_postfix(
                train=f"{run_loss / run_n:.3f}", val=f"{last_m['loss']:.3f}", best=f"{best:.3f}", ds_s=f"{rate:.0f}"
            )
            run_loss, run_n, win_t, win_seen = 0.0, 0, time.perf_counter(), 0
    if run_n or not best_metrics:
        rate = win_seen / max(1e-9, time.perf_counter() - win_t)
        last_m = validate(run_loss / max(1, run_n), rate)
    source.close()
    bar.close()
    fh.close()
    if best_card is None:
        save_resume(complete=True)  # a rerun starts afresh
        raise RuntimeError(
            f"MIST training diverged: no finite validation loss in {step} steps (see {log_csv}); no checkpoint written"
        )
    final = card(best_metrics)
    # Which budget ended the run, on the saved card too: only a step-bound run is reproducible.
    ended = {"final_step": step, "stopped_by": "max_steps" if step >= max_steps else "max_minutes"}
    final["training"].update(ended)
    saved_card = json.loads(card_path(out_weights).read_text())
    saved_card["training"].update(ended)
    write_text(card_path(out_weights), json.dumps(saved_card, indent=2, sort_keys=True))
    if quantile and p["calibrate"]:
        from estimators.mist.calibration import calibrate

        final["calibration"] = calibrate(str(out_weights), size=int(p["calib_size"]))
    save_resume(complete=True)  # only now: a retry after a failed calibration resumes, not retrains
    return final
