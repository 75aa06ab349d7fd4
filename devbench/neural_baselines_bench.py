"""Batched vs one-at-a-time training of the per-dataset neural estimators.

Prints, per estimator, the wall time of the batched path and of the
one-at-a-time path on the same datasets, their ratio, the accuracy against the
analytic MI, and how far the two paths agree compared with the seed-to-seed
spread of the estimator. Timings are measured in one run, single-threaded.

    python -m devbench.neural_baselines_bench                       # 64 datasets, n = 500
    python -m devbench.neural_baselines_bench --suite default       # ~80 datasets, n 10..500, d <= 32
    python -m devbench.neural_baselines_bench --estimators mine --count 16 --no-loop
    python -m devbench.neural_baselines_bench --suite accuracy --bmi   # n = 5000, 3 seeds, vs BMI
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import estimators
from estimators.base import Estimator


def gaussian_pairs(
    count: int, n_range: tuple[int, int], d_max: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Datasets with dx = dy = d and independent coordinate pairs of correlation rho_k.

    MI = -1/2 sum_k log(1 - rho_k^2), analytic; then a random rotation of x and
    of y (MI is invariant) so that the structure is not axis-aligned.
    """
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        n = int(rng.integers(n_range[0], n_range[1] + 1))
        d = int(rng.integers(1, d_max + 1))
        rho = rng.uniform(0.2, 0.8, size=d) * (rng.random(d) < min(1.0, 3.0 / d))  # a few informative pairs
        x = rng.standard_normal((n, d))
        y = rho * x + np.sqrt(1 - rho**2) * rng.standard_normal((n, d))
        qx, _ = np.linalg.qr(rng.standard_normal((d, d)))
        qy, _ = np.linalg.qr(rng.standard_normal((d, d)))
        out.append((x @ qx, y @ qy, float(-0.5 * np.log1p(-(rho**2)).sum())))
    return out


def run(name: str, data, params: dict, loop: bool) -> dict:
    est = estimators.get(name, **params)
    pairs = [(x, y) for x, y, _ in data]
    truth = np.array([mi for _, _, mi in data])
    t0, c0 = time.perf_counter(), time.process_time()
    batched = est.estimate_batch(pairs)
    t_batch, c_batch = time.perf_counter() - t0, time.process_time() - c0
    # CPU seconds are reported next to wall seconds: on a shared machine the
    # wall time depends on the load, the CPU time of a 1-thread run much less.
    row = {
        "estimator": name,
        "datasets": len(data),
        "batched_s": round(t_batch, 2),
        "batched_cpu_s": round(c_batch, 2),
        "s_per_dataset": round(t_batch / len(data), 3),
        "cpu_s_per_dataset": round(c_batch / len(data), 3),
    }
    b = np.array([e.mi for e in batched])
    row["failed"] = int(np.isnan(b).sum())
    row["mae_batched"] = round(float(np.nanmean(np.abs(b - truth))), 4)
    if loop:
        ref = estimators.get(name, **params)
        t0, c0 = time.perf_counter(), time.process_time()
        looped = Estimator._estimate_batch(ref, [ref.validate(x, y) for x, y in pairs])  # one at a time
        t_loop, c_loop = time.perf_counter() - t0, time.process_time() - c0
        lo = np.array([e.mi for e in looped])
        other = estimators.get(name, **{**params, "seed": params.get("seed", 0) + 1}).estimate_batch(pairs)
        s1 = np.array([e.mi for e in other])
        row.update(
            loop_s=round(t_loop, 2),
            loop_cpu_s=round(c_loop, 2),
            ratio=round(t_loop / t_batch, 2),
            cpu_ratio=round(c_loop / c_batch, 2),
            median_abs_batch_minus_loop=round(float(np.nanmedian(np.abs(b - lo))), 4),
            max_abs_batch_minus_loop=round(float(np.nanmax(np.abs(b - lo))), 4),
            median_seed_sd=round(float(np.nanmedian(np.abs(b - s1)) / np.sqrt(2)), 4),
            mae_loop=round(float(np.nanmean(np.abs(lo - truth))), 4),
        )
    return row


def accuracy_tasks(n: int, seed: int) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """The bivariate Gaussian rho = 0.75 and BMI's multinormal-dense-5-5-0.5, sampled by BMI."""
    from bmi.benchmark import BENCHMARK_TASKS
    from bmi.benchmark.tasks.multinormal import task_multinormal_dense

    out = []
    for task in (BENCHMARK_TASKS["1v1-normal-0.75"], task_multinormal_dense(5, 5, 0.5)):
        x, y = task.sample(n, seed=seed)
        out.append(
            (task.id, np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), float(task.mutual_information))
        )
    return out


def run_accuracy(names: list[str], params: dict, n: int, seeds: list[int], with_bmi: bool) -> None:
    rows: dict[tuple[str, str], list[float]] = {}
    secs: dict[str, float] = {}
    truth = {}
    for seed in seeds:
        tasks = accuracy_tasks(n, seed)
        for task, _, _, mi in tasks:
            truth[task] = mi
        for name in names:
            t0 = time.process_time()
            est = estimators.get(name, **{**params, "seed": seed}).estimate_batch([(x, y) for _, x, y, _ in tasks])
            secs[name] = secs.get(name, 0.0) + time.process_time() - t0
            for (task, *_), e in zip(tasks, est):
                rows.setdefault((name, task), []).append(e.mi)
        if with_bmi:  # package defaults, only the seed varies
            from bmi.estimators import InfoNCEEstimator, MINEEstimator

            for label, cls in (("bmi_mine", MINEEstimator), ("bmi_infonce", InfoNCEEstimator)):
                t0 = time.process_time()
                for task, x, y, _ in tasks:
                    rows.setdefault((label, task), []).append(float(cls(verbose=False, seed=seed).estimate(x, y)))
                secs[label] = secs.get(label, 0.0) + time.process_time() - t0
    for (name, task), vals in rows.items():
        v = np.array(vals)
        print(
            json.dumps(
                {
                    "estimator": name,
                    "task": task,
                    "n": n,
                    "true_mi": round(truth[task], 4),
                    "mean": round(float(v.mean()), 4),
                    "sd": round(float(v.std(ddof=1)), 4) if len(v) > 1 else None,
                    "rel_err_of_mean": round(float(v.mean() / truth[task] - 1), 4),
                    "values": [round(float(a), 4) for a in v],
                    "cpu_s_per_task": round(secs[name] / (len(seeds) * 2), 2),
                }
            ),
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--estimators", default="mine,infonce,minde_c,minde_j")
    ap.add_argument(
        "--suite",
        choices=["n500", "default", "accuracy"],
        default="n500",
        help="n500: 64 datasets of n = 500, d <= 5; default: 80 datasets, n 10..500, d <= 32; "
        "accuracy: BMI's 1v1-normal-0.75 and multinormal-dense-5-5-0.5 at n = 5000, 3 seeds",
    )
    ap.add_argument("--bmi", action="store_true", help="with --suite accuracy: also BMI's MINE and InfoNCE")
    ap.add_argument("--count", type=int, default=None)
    ap.add_argument("--params", default="{}", help="JSON of estimator parameters, applied to all")
    ap.add_argument("--no-loop", action="store_true", help="time the batched path only")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.suite == "accuracy":
        run_accuracy(args.estimators.split(","), json.loads(args.params), 5000, [0, 1, 2], args.bmi)
        return
    if args.suite == "n500":
        data = gaussian_pairs(args.count or 64, (500, 500), 5, seed=0)
    else:
        data = gaussian_pairs(args.count or 80, (10, 500), 32, seed=0)
    for name in args.estimators.split(","):
        print(json.dumps(run(name, data, json.loads(args.params), not args.no_loop)), flush=True)


if __name__ == "__main__":
    main()
