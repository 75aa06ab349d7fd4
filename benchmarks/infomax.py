"""InfoMax: learn a projection W (d x 2) that maximises I(W^T x; y), with MI estimators as the loss.

    python -m benchmarks.infomax --config config/infomax.yaml --out results/infomax

The task: x ~ N(0, I_d) and y depends on x only through s = B^T x, B (d x 2) orthonormal and known:

    y_1 = tanh(2 s_1) + sigma e_1,    y_2 = s_2 + (s_1^2 - 1) / 2 + sigma e_2.

By data processing I(W^T x; y) <= I(s; y), with equality when span(W) = span(B). Each method
maximises its own estimate of I(Q^T x; y), Q = qr(W).Q (every method sees an orthonormal projection),
on fresh batches of n rows:

- `mist`, `mist_qr`: the frozen MIST module (`estimators.get(...).module()`), one forward and backward
  pass per step;
- `mine`, `infonce`: the suite's own objectives and critics (`estimators.mine`, `estimators.infonce`),
  the critic trained jointly with W by one Adam step on both per step, as usual.

Reported per method and seed: the principal-angle cosines between span(Q) and span(B), the true MI of
the learned projection (`true_mi`: Monte Carlo, with its standard error), wall time per step, and wall
time to reach 95% of the optimum I(s; y). Times are measured in this process, for every method in the
same run on the same number of torch threads (`--threads`, default 1), and exclude the snapshots'
evaluation: wall seconds, and the process's CPU seconds, which other jobs on a shared machine move far
less (with one thread, they are the wall time of a quiet machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

import estimators
from estimators.atomic import atomic_path
from estimators.neural.training import Group

METHODS = ("mist", "mist_qr", "mine", "infonce")


@dataclasses.dataclass(frozen=True)
class Task:
    d: int = 20
    sigma: float = 0.4
    seed: int = 0  # of the subspace B

    @property
    def basis(self) -> np.ndarray:
        rng = np.random.default_rng(np.random.SeedSequence([int(self.seed), 20261206]))
        return np.linalg.qr(rng.normal(size=(self.d, 2)))[0]

    @staticmethod
    def link(s):
        """The noise-free y of s (..., 2); numpy or torch."""
        lib = torch if isinstance(s, torch.Tensor) else np
        return lib.stack([lib.tanh(2.0 * s[..., 0]), s[..., 1] + 0.5 * (s[..., 0] ** 2 - 1.0)], -1)

    def sample(self, n: int, gen: torch.Generator, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, self.d, generator=gen, dtype=torch.float64)
        s = x @ torch.from_numpy(self.basis)
        y = self.link(s) + self.sigma * torch.randn(n, 2, generator=gen, dtype=torch.float64)
        return x.to(dtype), y.to(dtype)


def _log_normal(y: np.ndarray, mean: np.ndarray, sigma: float) -> np.ndarray:
    """log N(y; mean, sigma^2 I) over the last axis (2-D)."""
    return -((y - mean) ** 2).sum(-1) / (2 * sigma**2) - np.log(2 * np.pi * sigma**2)


def _logmeanexp(a: np.ndarray, axis: int) -> np.ndarray:
    top = a.max(axis, keepdims=True)
    return (top + np.log(np.exp(a - top).mean(axis, keepdims=True))).squeeze(axis)


def true_mi(
    task: Task, q: np.ndarray, outer: int = 2000, inner: int = 1024, marginal: int = 4096, seed: int = 0
) -> tuple[float, float]:
    """I(Q^T x; y) for an orthonormal Q (d x 2), by nested Monte Carlo: (estimate, standard error).

    t = Q^T x and s = B^T x are jointly Gaussian with cov(s, t) = A = B^T Q, so s | t ~ N(A t, I - A A^T)
    and p(y | t) = E_{s|t} N(y; link(s), sigma^2 I); p(y) averages the same over s ~ N(0, I). The same
    draws serve every Q (common random numbers), so snapshots compare without sampling noise between them.
    The standard error is over the outer draws; the inner and marginal averages add a bias of order
    1/inner and 1/marginal."""
    rng = np.random.default_rng(seed)
    a = task.basis.T @ q
    t = rng.normal(size=(outer, 2))
    cov = np.eye(2) - a @ a.T
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    root = v * np.sqrt(np.clip(w, 0.0, None))
    s = t @ a.T + rng.normal(size=(outer, 2)) @ root.T
    y = task.link(s) + task.sigma * rng.normal(size=(outer, 2))
    s_cond = (t @ a.T)[:, None, :] + rng.normal(size=(outer, inner, 2)) @ root.T
    log_cond = _logmeanexp(_log_normal(y[:, None, :], task.link(s_cond), task.sigma), 1)
    s_marg = rng.normal(size=(marginal, 2))
    log_marg = np.concatenate(
        [
            _logmeanexp(_log_normal(y[i : i + 256, None, :], task.link(s_marg)[None], task.sigma), 1)
            for i in range(0, outer, 256)
        ]
    )
    terms = log_cond - log_marg
    return float(terms.mean()), float(terms.std(ddof=1) / np.sqrt(outer))


def optimum(task: Task, outer: int = 2000, seed: int = 0) -> tuple[float, float]:
    """I(s; y) = the MI at span(W) = span(B): p(y | s) is exact, p(y) by Monte Carlo."""
    return true_mi(task, task.basis, outer=outer, inner=1, seed=seed)


def cosines(task: Task, q: np.ndarray) -> np.ndarray:
    """Cosines of the principal angles between span(q) and span(B), largest first."""
    return np.linalg.svd(task.basis.T @ q, compute_uv=False)


class _MistLoss:
    def __init__(self, name: str, temperature: float | None) -> None:
        self.module = estimators.get(name).module(temperature=temperature, clip=False)
        self.quantile = name == "mist_qr"
        self.params: list[torch.Tensor] = []

    def loss(self, u: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        out = self.module(u, y)
        return -(out[0] if self.quantile else out)


class _CriticLoss:
    """The estimator's own objective (`estimators.mine` / `estimators.infonce`) on one batch, its critic
    stacked for one dataset (G = 1) and trained by the same optimiser as W."""

    def __init__(self, name: str, seed: int, dx: int, dy: int) -> None:
        est = estimators.get(name)
        self.objective = est._objective()
        gen = torch.Generator().manual_seed(seed)
        params, self.state = self.objective.init([gen], [dx], [dy])
        self.params = [p.requires_grad_(True) for p in params]
        self.name = name

    def loss(self, u: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n = u.shape[0]
        rows = torch.tensor([n])
        dims = torch.tensor([u.shape[1]]), torch.tensor([y.shape[1]])
        group = Group(u[None], y[None], u[None], y[None], rows, rows, *dims, rows)
        whole = torch.arange(n)[None]
        draws = (
            {"rows": whole}
            if self.name == "infonce"
            else {"paired": whole, "marginal": torch.randperm(n, generator=gen)[None]}
        )
        loss, self.state = self.objective.loss(self.params, self.state, group, draws)
        self.state = {k: v.detach() for k, v in self.state.items()}
        return loss.sum()


def run(method: str, task: Task, seed: int, cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Train W with `method`; return the snapshots (step, train seconds so far, Q)."""
    mcfg = cfg["methods"][method]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(task.d, 2, generator=gen, dtype=torch.float32).requires_grad_(True)
    if method.startswith("mist"):
        loss_fn = _MistLoss(method, mcfg.get("temperature"))
    else:
        loss_fn = _CriticLoss(method, seed, 2, 2)
    opt = torch.optim.Adam(
        [{"params": [w], "lr": mcfg["lr_w"]}, {"params": loss_fn.params, "lr": mcfg.get("lr_critic", 0.0)}]
    )
    data = torch.Generator().manual_seed(10_000 + seed)
    snaps = [dict(step=0, seconds=0.0, cpu_seconds=0.0, q=torch.linalg.qr(w.detach())[0].double().numpy())]
    spent = cpu = 0.0
    for step in range(1, int(mcfg["steps"]) + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        x, y = task.sample(int(cfg["n"]), data)
        u = x @ torch.linalg.qr(w)[0]
        loss = loss_fn.loss(u, y, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        spent += time.perf_counter() - t0
        cpu += time.process_time() - c0
        if step % int(mcfg["snapshot_every"]) == 0 or step == int(mcfg["steps"]):
            q = torch.linalg.qr(w.detach())[0].double().numpy()
            snaps.append(dict(step=step, seconds=spent, cpu_seconds=cpu, q=q))
    return snaps


def score(task: Task, snaps: list[dict[str, Any]], mi_star: float, cfg: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for s in snaps:
        mi, se = true_mi(task, s["q"], outer=int(cfg["mc_outer"]), inner=int(cfg["mc_inner"]))
        cos = cosines(task, s["q"])
        rows.append(
            dict(
                step=s["step"],
                seconds=s["seconds"],
                cpu_seconds=s["cpu_seconds"],
                true_mi=mi,
                true_mi_se=se,
                cos_min=cos[-1],
                cos_max=cos[0],
            )
        )
    out = pd.DataFrame(rows)
    out["share"] = out["true_mi"] / mi_star
    return out


def summarise(traj: pd.DataFrame, target: float) -> pd.DataFrame:
    """Per method and seed: final cosines and true MI, seconds per step, seconds and steps to `target`."""
    rows = []
    for (method, seed), t in traj.groupby(["method", "seed"], sort=False):
        t = t.sort_values("step")
        last = t.iloc[-1]
        hit = t[t["share"] >= target]
        rows.append(
            dict(
                method=method,
                seed=seed,
                cos_min=last["cos_min"],
                cos_max=last["cos_max"],
                true_mi=last["true_mi"],
                share=last["share"],
                seconds_per_step=last["seconds"] / max(last["step"], 1),
                cpu_seconds_per_step=last["cpu_seconds"] / max(last["step"], 1),
                steps_to_target=float(hit["step"].iloc[0]) if len(hit) else np.nan,
                seconds_to_target=float(hit["seconds"].iloc[0]) if len(hit) else np.nan,
                cpu_seconds_to_target=float(hit["cpu_seconds"].iloc[0]) if len(hit) else np.nan,
            )
        )
    return pd.DataFrame(rows)


def _module_step(name: str, x: torch.Tensor, y: torch.Tensor):
    mod = estimators.get(name).module(clip=False)
    xr = x.clone().requires_grad_(True)

    def once() -> None:
        out = mod(xr, y)
        (out[0] if isinstance(out, tuple) else out).backward()

    return once


def _critic_step(name: str, x: torch.Tensor, y: torch.Tensor, seed: int):
    crit = _CriticLoss(name, seed, x.shape[1], y.shape[1])
    opt = torch.optim.Adam(crit.params, lr=1e-3)
    gen = torch.Generator().manual_seed(seed)

    def once() -> None:
        loss = crit.loss(x, y, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return once


def step_cost(n: int = 500, d: int = 20, repeats: int = 20, seed: int = 0) -> pd.DataFrame:
    """Seconds of one forward and backward pass of the MIST module at (n, d) x (n, d), next to one MINE
    and one InfoNCE step (critic on concat(x, y), forward, backward and Adam) on the same data: medians."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    y = x + torch.randn(n, d, generator=gen)
    steps = {f"{name} module forward + backward": _module_step(name, x, y) for name in ("mist", "mist_qr")}
    steps |= {f"{name} critic step": _critic_step(name, x, y, seed) for name in ("mine", "infonce")}
    rows = [
        dict(zip(("what", "seconds", "cpu_seconds"), (what, *_median_time(fn, repeats)))) for what, fn in steps.items()
    ]
    out = pd.DataFrame(rows)
    mine = out["what"] == "mine critic step"
    out["ratio_to_mine"] = out["seconds"] / float(out.loc[mine, "seconds"].iloc[0])
    out["cpu_ratio_to_mine"] = out["cpu_seconds"] / float(out.loc[mine, "cpu_seconds"].iloc[0])
    return out


def _median_time(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of `fn` (CPU time: what other jobs on a shared machine move least)."""
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)), float(np.median(cpu))


def study(
    cfg: dict[str, Any], seeds: list[int], methods: tuple[str, ...], partial: Path | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    task = Task(d=int(cfg["d"]), sigma=float(cfg["sigma"]), seed=int(cfg["task_seed"]))
    mi_star, _ = optimum(task, outer=int(cfg["mc_outer"]))
    parts = []
    for seed in seeds:
        for method in methods:
            snaps = run(method, task, seed, cfg)
            t = score(task, snaps, mi_star, cfg)
            t.insert(0, "seed", seed)
            t.insert(0, "method", method)
            parts.append(t)
            if partial is not None:  # every finished run on disk: a late failure loses nothing
                with atomic_path(partial) as tmp:
                    pd.concat(parts, ignore_index=True).to_csv(tmp, index=False)
            last = t.iloc[-1]
            print(
                f"{method:8s} seed {seed}: cos_min {last['cos_min']:.3f} share {last['share']:.3f} "
                f"{last['seconds'] / max(last['step'], 1) * 1e3:.1f} ms/step",
                flush=True,
            )
    traj = pd.concat(parts, ignore_index=True)
    return traj, summarise(traj, float(cfg["target"])), mi_star


def plot(traj: pd.DataFrame, target: float, path: Path) -> None:
    """Share of the optimum against training seconds, one line per method and seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, (method, frame) in enumerate(traj.groupby("method", sort=False)):
        for j, (_, t) in enumerate(frame.groupby("seed")):
            t = t[t["step"] > 0]
            ax.plot(t["seconds"], t["share"], color=f"C{i}", alpha=0.8, lw=1.2, label=method if j == 0 else None)
    ax.axhline(target, color="k", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("training wall seconds (one torch thread)")
    ax.set_ylabel("true I(W^T x; y) / I(s; y)")
    ax.set_ylim(0, 1.05)
    ax.legend(frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150)
    plt.close(fig)


def _markdown(summary: pd.DataFrame, cost: pd.DataFrame | None, mi_star: float, cfg: dict[str, Any]) -> str:
    agg = summary.groupby("method", sort=False).agg(
        cos_min_worst=("cos_min", "min"),
        cos_min_median=("cos_min", "median"),
        share_median=("share", "median"),
        ms_per_step=("seconds_per_step", lambda s: 1e3 * s.median()),
        cpu_ms_per_step=("cpu_seconds_per_step", lambda s: 1e3 * s.median()),
        seeds_at_target=("seconds_to_target", lambda s: int(s.notna().sum())),
        steps_to_target_median=("steps_to_target", "median"),
        seconds_to_target_median=("seconds_to_target", "median"),
        seconds_to_target_worst=("seconds_to_target", "max"),
        cpu_seconds_to_target_median=("cpu_seconds_to_target", "median"),
    )
    lines = [
        f"InfoMax, d = {cfg['d']}, n = {cfg['n']} rows per step, I(s; y) = {mi_star:.3f} nats; "
        f"target {cfg['target']:.0%} of it. Seeds: {sorted(summary['seed'].unique().tolist())}.",
        "",
        agg.to_markdown(floatfmt=".3f"),
    ]
    if cost is not None:
        lines += ["", "One step at n = 500, d = 20 (medians):", "", cost.to_markdown(index=False, floatfmt=".4f")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config/infomax.yaml")
    ap.add_argument("--out", required=True, help="directory for trajectories.csv, summary.csv/.md, curves.png")
    ap.add_argument("--seeds", type=int, nargs="*", help="default: the config's report_seeds")
    ap.add_argument("--methods", nargs="*", default=None, help=f"default: the config's; from {METHODS}")
    ap.add_argument("--no-cost", action="store_true", help="skip the one-step cost table")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for every method (default 1)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load(Path(args.config).read_text())
    methods = tuple(args.methods or cfg["methods"])
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; choose from {METHODS}")
    seeds = args.seeds if args.seeds else [int(s) for s in cfg["report_seeds"]]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    traj, summary, mi_star = study(cfg, seeds, methods, partial=out / "trajectories.partial.csv")
    cost = None if args.no_cost else step_cost()
    for name, frame in (("trajectories.csv", traj), ("summary.csv", summary)):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False)
    if cost is not None:
        with atomic_path(out / "step_cost.csv") as tmp:
            cost.to_csv(tmp, index=False)
    plot(traj, float(cfg["target"]), out / "curves.png")
    with atomic_path(out / "summary.md") as tmp:
        Path(tmp).write_text(_markdown(summary, cost, mi_star, cfg))
    (out / "trajectories.partial.csv").unlink(missing_ok=True)
    print(_markdown(summary, cost, mi_star, cfg))


if __name__ == "__main__":
    main()
