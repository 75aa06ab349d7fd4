"""Batched training of one network per dataset, with per-dataset early stopping.

The protocol follows BMI's neural estimators: standardise x and y, split the
rows 50/50 into train and held-out halves, evaluate on the held-out half every
`eval_every` steps, stop a dataset after `patience` evaluations without gain
and report its best held-out value.

`train_group` runs many datasets at once. Everything random for a dataset comes
from that dataset's own generator (split, initial weights, batches, noise), in
blocks of `DRAW_BLOCK` steps whatever the group, so a dataset gets the same
result in a group as alone, up to float rounding (in float64 to ~1e-12; in
float32 training can amplify it to ~1e-2 nats for MINE, and an early stop can
then fall one evaluation apart, within the seed-to-seed spread). Datasets that stop early or
diverge (non-finite loss) are dropped from the group, which shrinks the work
and keeps a NaN in one dataset away from the others.
"""

from __future__ import annotations

import dataclasses
import math
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from estimators import standardise as _std
from estimators.base import Estimate, Estimator
from estimators.device import resolve_device

# Steps of randomness drawn per dataset at a time. A constant, so that the
# random stream of a dataset does not depend on the group it trains in.
DRAW_BLOCK = 16

Tensors = dict[str, torch.Tensor]


# -- data ----------------------------------------------------------------------
@dataclasses.dataclass
class Prepared:
    """One dataset, standardised and split, with its generator."""

    xtr: torch.Tensor
    ytr: torch.Tensor
    xte: torch.Tensor
    yte: torch.Tensor
    gen: torch.Generator


def prepare(x: np.ndarray, y: np.ndarray, seed: int, train_fraction: float = 0.5, standardise: bool = True) -> Prepared:
    gen = torch.Generator().manual_seed(int(seed))
    if standardise:  # before the split, as BMI does
        x, y = _std.standardise(x), _std.standardise(y)
    n = x.shape[0]
    n_tr = min(n - 1, max(1, int(n * train_fraction)))
    perm = torch.randperm(n, generator=gen)
    tr, te = perm[:n_tr], perm[n_tr:]
    xt = torch.from_numpy(x).float()
    yt = torch.from_numpy(y).float()
    return Prepared(xt[tr], yt[tr], xt[te], yt[te], gen)


def pad_stack(parts: Sequence[torch.Tensor], at_least: Sequence[int] | None = None) -> torch.Tensor:
    """Stack tensors of equal rank, zero-padding every axis to the largest size
    (and to `at_least`, so that a shrunk group keeps the full group's widths)."""
    shape = [max(s) for s in zip(*(p.shape for p in parts), *([at_least] if at_least else []))]
    out = torch.zeros(len(parts), *shape, dtype=parts[0].dtype)
    for i, p in enumerate(parts):
        out[(i,) + tuple(slice(0, s) for s in p.shape)] = p
    return out


def pad_dicts(dicts: Sequence[Tensors], at_least: dict[str, Sequence[int]] | None = None) -> Tensors:
    return {k: pad_stack([d[k] for d in dicts], (at_least or {}).get(k)) for k in dicts[0]}


def row_mask(counts: torch.Tensor, width: int) -> torch.Tensor:
    """(G,) counts -> (G, width) bool, True for the first counts[g] positions."""
    return torch.arange(width, device=counts.device)[None, :] < counts[:, None]


def gather_rows(a: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """a (G, N, d), idx (G, R) -> (G, R, d)."""
    return torch.gather(a, 1, idx[..., None].expand(-1, -1, a.shape[-1]))


@dataclasses.dataclass
class Group:
    """Padded train/held-out tensors of a group, with per-dataset sizes (G,)."""

    xtr: torch.Tensor
    ytr: torch.Tensor
    xte: torch.Tensor
    yte: torch.Tensor
    ntr: torch.Tensor
    nte: torch.Tensor
    dx: torch.Tensor
    dy: torch.Tensor
    batch: torch.Tensor  # rows per training batch: min(batch, ntr)

    @classmethod
    def build(cls, preps: Sequence[Prepared], batch: int, device: torch.device) -> Group:
        def sizes(f: Callable[[Prepared], int]) -> torch.Tensor:
            return torch.tensor([f(p) for p in preps], device=device)

        ntr = sizes(lambda p: p.xtr.shape[0])
        return cls(
            *(pad_stack([getattr(p, k) for p in preps]).to(device) for k in ("xtr", "ytr", "xte", "yte")),
            ntr=ntr,
            nte=sizes(lambda p: p.xte.shape[0]),
            dx=sizes(lambda p: p.xtr.shape[1]),
            dy=sizes(lambda p: p.ytr.shape[1]),
            batch=ntr.clamp(max=batch),
        )

    def select(self, idx: torch.Tensor) -> Group:
        return Group(**{f.name: getattr(self, f.name)[idx] for f in dataclasses.fields(self)})


# -- optimiser -----------------------------------------------------------------
class BatchedAdam:
    """Adam on stacked parameters (as torch.optim.Adam, elementwise, so datasets stay
    independent), with `select` to drop datasets from the group."""

    def __init__(self, params: list[torch.Tensor], lr: float, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self) -> None:
        # foreach ops: one kernel launch per operation for all tensors, which is
        # most of the cost of a step for small networks.
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, math.sqrt(1 - b2**self.t)
        grads = [p.grad for p in self.params]
        torch._foreach_lerp_(self.m, grads, 1 - b1)
        torch._foreach_mul_(self.v, b2)
        torch._foreach_addcmul_(self.v, grads, grads, value=1 - b2)
        denom = torch._foreach_sqrt(self.v)
        torch._foreach_div_(denom, c2)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, self.m, denom, value=-self.lr / c1)
        for p in self.params:
            p.grad = None

    def select(self, idx: torch.Tensor) -> list[torch.Tensor]:
        self.params = [p.detach()[idx].requires_grad_() for p in self.params]
        self.m = [m[idx] for m in self.m]
        self.v = [v[idx] for v in self.v]
        return self.params


# -- the objective interface ---------------------------------------------------
class Objective:
    """What a method supplies to `train_group`. All tensors carry a leading group axis.

    - `init(gens, dx, dy) -> (params, state)`: stacked parameters, method state;
    - `draw(gen, ntr, batch, dx, dy, steps) -> dict`: one dataset's randomness for
      `steps` steps (leading axis `steps`);
    - `eval_draw(gen, nte, dx, dy) -> dict`: fixed randomness for held-out evaluation
      (common random numbers make successive evaluations comparable);
    - `loss(params, state, group, draws) -> (loss (G,), new_state)`: minimised;
    - `post_step(params, state, step) -> state`: after the optimiser step;
    - `evaluate(params, state, group, eval_draws) -> (G,)`: the held-out criterion;
    - with `keep_best=True`, `snapshot(params, state)` is stored at each dataset's best
      evaluation and `final(snapshot, group, gens) -> (G,)` gives the estimate;
      otherwise the best held-out value is the estimate.
    """

    maximise: bool = True
    keep_best: bool = False

    def post_step(self, params: list[torch.Tensor], state: Tensors, step: int) -> Tensors:
        return state

    def eval_draw(self, gen: torch.Generator, nte: int, dx: int, dy: int) -> Tensors:
        return {}


@dataclasses.dataclass
class TrainConfig:
    steps: int
    batch: int
    lr: float
    eval_every: int
    patience: int


@dataclasses.dataclass
class Outcome:
    value: float = math.nan
    steps: int = 0
    best_step: int = 0
    stopped_early: bool = False
    error: str | None = None
    history: list = dataclasses.field(default_factory=list)


def _finite_or_fail(values: torch.Tensor, active: torch.Tensor, out: list[Outcome], what: str) -> torch.Tensor:
    """Record failures for non-finite entries; return the keep mask."""
    ok = torch.isfinite(values)
    for a in active[~ok].tolist():
        out[a].error = what
    return ok


def train_group(
    obj: Objective,
    preps: Sequence[Prepared],
    cfg: TrainConfig,
    device: torch.device,
    max_steps: Sequence[int] | None = None,
) -> list[Outcome]:
    """Train a group; `max_steps` optionally caps each dataset below `cfg.steps`
    (each dataset is also evaluated at its cap, so it ends as it would alone)."""
    g = len(preps)
    cap = torch.tensor(list(max_steps) if max_steps is not None else [cfg.steps] * g)
    gens = [p.gen for p in preps]
    full = Group.build(preps, cfg.batch, device)
    dx, dy = full.dx.tolist(), full.dy.tolist()
    params, state = obj.init(gens, dx, dy)
    params = [p.to(device).requires_grad_() for p in params]
    state = {k: v.to(device) for k, v in state.items()}
    ev = pad_dicts([obj.eval_draw(gens[i], int(full.nte[i]), dx[i], dy[i]) for i in range(g)]) if g else {}
    ev = {k: v.to(device) for k, v in ev.items()}
    opt = BatchedAdam(params, cfg.lr)
    out = [Outcome() for _ in range(g)]
    best = torch.full((g,), math.nan)
    since = torch.zeros(g, dtype=torch.long)
    snaps: list[torch.Tensor] | None = None
    active = torch.arange(g)
    group, buf = full, {}
    widths: dict[str, Sequence[int]] = {}  # per-dataset draw shapes of the full group

    def compact(keep: torch.Tensor) -> None:
        nonlocal params, state, group, buf, ev, active
        idx = torch.nonzero(keep).squeeze(1)
        di = idx.to(device)
        params = opt.select(di)
        state = {k: v[di] for k, v in state.items()}
        buf = {k: v[di] for k, v in buf.items()}
        ev = {k: v[di] for k, v in ev.items()}
        group = group.select(di)
        active = active[idx]

    step = 0
    while step < cfg.steps and len(active):
        if step % DRAW_BLOCK == 0:
            buf = pad_dicts(
                [
                    obj.draw(gens[a], int(full.ntr[a]), int(full.batch[a]), dx[a], dy[a], DRAW_BLOCK)
                    for a in active.tolist()
                ],
                widths,
            )
            widths = widths or {k: v.shape[1:] for k, v in buf.items()}
            buf = {k: v.to(device) for k, v in buf.items()}
        draws = {k: v[:, step % DRAW_BLOCK] for k, v in buf.items()}
        loss, new_state = obj.loss(params, state, group, draws)
        ok = _finite_or_fail(loss.detach().cpu(), active, out, f"non-finite training loss at step {step + 1}")
        if not ok.all():
            compact(ok)
            if not len(active):
                break
            draws = {k: v[:, step % DRAW_BLOCK] for k, v in buf.items()}
            loss, new_state = obj.loss(params, state, group, draws)
        loss.sum().backward()
        opt.step()
        params = opt.params
        state = obj.post_step(params, {k: v.detach() for k, v in new_state.items()}, step)
        step += 1
        # A dataset is evaluated every `eval_every` steps and at its own cap, and only then: its
        # schedule (and so its estimate) must not depend on which datasets share its group.
        due = (step % cfg.eval_every == 0) | (step == cap[active])
        if not due.any():
            continue
        with torch.no_grad():
            val = obj.evaluate(params, state, group, ev).float().cpu()
        ok = _finite_or_fail(torch.where(due, val, 0.0), active, out, f"non-finite held-out value at step {step}")
        prev = best[active]
        gain = (val > prev) if obj.maximise else (val < prev)
        gain = due & ok & (gain | torch.isnan(prev))
        since[active] = torch.where(due, torch.where(gain, 0, since[active] + 1), since[active])
        best[active[gain]] = val[gain]
        for j, a in enumerate(active.tolist()):
            if due[j]:
                out[a].history.append((step, float(val[j])))
                out[a].steps = step
            if gain[j]:
                out[a].best_step = step
        if obj.keep_best and gain.any():
            snap = [s.detach() for s in obj.snapshot(params, state)]
            if snaps is None:
                snaps = [torch.zeros((g,) + s.shape[1:], dtype=s.dtype, device=device) for s in snap]
            gi = torch.nonzero(gain).squeeze(1)
            for s_all, s in zip(snaps, snap):
                s_all[active[gi].to(device)] = s[gi.to(device)]
        patient_out = due & (since[active] >= cfg.patience)
        for a in active[patient_out].tolist():
            out[a].stopped_early = True
        keep = ok & ~(patient_out | (step >= cap[active]))
        if not keep.all():
            compact(keep)

    done = [i for i in range(g) if out[i].error is None and not math.isnan(best[i])]
    if obj.keep_best and done:
        idx = torch.tensor(done)
        with torch.no_grad():
            vals = (
                obj.final([s[idx.to(device)] for s in snaps], full.select(idx.to(device)), [gens[i] for i in done])
                .float()
                .cpu()
            )
        for j, i in enumerate(done):
            out[i].value = float(vals[j])
            if not math.isfinite(out[i].value):  # the held-out evaluations were finite: say which part failed
                out[i].error = f"non-finite final estimate ({out[i].value}) from the best snapshot"
    else:
        for i in done:
            out[i].value = float(best[i])
    for i in range(g):
        if out[i].error is None and math.isnan(out[i].value):
            out[i].error = "no finite held-out evaluation"
    return out


# -- the estimator base --------------------------------------------------------
class NeuralEstimator(Estimator):
    """Base of the per-dataset-trained estimators: one training path for both
    `estimate` (a group of one) and `estimate_batch` (groups of similar datasets).

    Subclasses set `name` and implement `_objective()`; `_group_key` keeps apart
    datasets that cannot share a stacked network, `_max_group` bounds memory.
    `batched=False` makes `estimate_batch` train one dataset at a time (the reference).
    """

    min_n = 4
    deterministic = True
    amortised = False
    uses_gpu = True
    # Conformance checks the interface, not accuracy: a short budget keeps it fast.
    test_params: dict[str, Any] = {"steps": 100, "eval_every": 50}

    def _objective(self, key: Any) -> Objective:
        """The training objective for a group whose datasets share `key`."""
        raise NotImplementedError

    def _group_key(self, x: np.ndarray, y: np.ndarray) -> Any:
        return ()

    def _max_group(self) -> int:
        return int(self.params["group_size"])

    def _info(self) -> dict[str, Any]:
        return {}

    def _steps_for(self, n: int) -> int:
        """Most training steps for a dataset of n rows (override for budgets that scale with n)."""
        return int(self.params["steps"])

    def _config(self, steps: int) -> TrainConfig:
        p = self.params
        return TrainConfig(
            steps=steps,
            batch=int(p["batch"]),
            lr=float(p["lr"]),
            eval_every=int(p["eval_every"]),
            patience=int(p["patience"]),
        )

    def _estimate(self, x: np.ndarray, y: np.ndarray) -> Estimate:
        return self._run([(x, y)])[0]

    def _estimate_batch(self, datasets: list[tuple[np.ndarray, np.ndarray]]) -> list[Estimate]:
        if not self.params.get("batched", True):
            return super()._estimate_batch(datasets)
        return self._run(datasets)

    def _run(self, datasets: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[Estimate]:
        p = self.params
        device = resolve_device(p.get("device", "auto"))
        # Sort by key, then by size, so that a group pads little.
        order = sorted(
            range(len(datasets)),
            key=lambda i: (
                repr(self._group_key(*datasets[i])),
                datasets[i][0].shape[0],
                datasets[i][0].shape[1] + datasets[i][1].shape[1],
            ),
        )
        cap = max(1, self._max_group())
        groups: list[list[int]] = []
        for i in order:
            if (
                groups
                and len(groups[-1]) < cap
                and self._group_key(*datasets[groups[-1][0]]) == self._group_key(*datasets[i])
            ):
                groups[-1].append(i)
            else:
                groups.append([i])
        results: list[Estimate | None] = [None] * len(datasets)
        for members in groups:
            try:
                preps = [
                    prepare(
                        *datasets[i], seed=p["seed"], train_fraction=p["train_fraction"], standardise=p["standardize"]
                    )
                    for i in members
                ]
                key = self._group_key(*datasets[members[0]])
                caps = [self._steps_for(datasets[i][0].shape[0]) for i in members]
                outs = train_group(self._objective(key), preps, self._config(max(caps)), device, caps)
            except (RuntimeError, ValueError, FloatingPointError) as err:  # e.g. out of memory
                reason = f"{type(err).__name__}: {err}"
                outs = [Outcome(error=reason, history=[traceback.format_exc(limit=3)]) for _ in members]
            for i, o in zip(members, outs):
                info = {
                    "steps": o.steps,
                    "best_step": o.best_step,
                    "stopped_early": o.stopped_early,
                    "held_out_history": o.history,
                    "group_size": len(members),
                    **self._info(),
                }
                results[i] = Estimate.failed(o.error, **info) if o.error else Estimate(mi=o.value, info=info)
        return results  # type: ignore[return-value]


def common_params(**kw: Any) -> dict[str, Any]:
    """Validate the budget parameters every neural estimator takes."""
    for k in ("batch", "eval_every", "patience", "group_size"):
        if int(kw[k]) < 1:
            raise ValueError(f"{k} must be >= 1, got {kw[k]}")
    if kw["steps"] != "auto" and int(kw["steps"]) < 1:
        raise ValueError(f"steps must be >= 1 or 'auto', got {kw['steps']}")
    if not float(kw["lr"]) > 0:
        raise ValueError(f"lr must be > 0, got {kw['lr']}")
    if not 0 < float(kw["train_fraction"]) < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {kw['train_fraction']}")
    return kw
