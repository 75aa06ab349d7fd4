"""Our KSG against BMI's KSGEnsembleFirstEstimator on the same data, as ratios from one run.

    python -m devbench.ksg_bench [--repeats 3]

Prints, per (n, d): the two estimates, their absolute difference, the median
wall time of each and the speed-up. Ratios, not absolute times, are what to
compare across machines.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _median_time(f, repeats: int) -> tuple[float, float]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--k", type=int, default=5)
    args = ap.parse_args(argv)

    from bmi.benchmark.tasks.multinormal import task_multinormal_dense
    from bmi.estimators import KSGEnsembleFirstEstimator

    import estimators

    ours = estimators.get("ksg", k=args.k)
    cheb = estimators.get("ksg", k=args.k, metric="chebyshev")
    theirs = KSGEnsembleFirstEstimator(neighborhoods=(args.k,))
    print(
        f"{'n':>6} {'d':>3} {'ours':>10} {'bmi':>10} {'|diff|':>9} {'t_ours':>8} {'t_bmi':>8} "
        f"{'speedup':>8} {'t_cheb':>8} {'cheb_x':>7}"
    )
    for n in (500, 5000):
        for d in (5, 16):
            x, y = task_multinormal_dense(d, d, 0.5).sample(n, seed=0)
            x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
            ours.estimate(x, y)  # warm-up (torch kernels)
            t_o, e_o = _median_time(lambda x=x, y=y: ours.estimate(x, y).mi, args.repeats)
            t_b, e_b = _median_time(lambda x=x, y=y: theirs.estimate(x, y), args.repeats)
            t_c, _ = _median_time(lambda x=x, y=y: cheb.estimate(x, y).mi, args.repeats)
            print(
                f"{n:>6} {d:>3} {e_o:>10.6f} {e_b:>10.6f} {abs(e_o - e_b):>9.1e} {t_o:>8.4f} {t_b:>8.4f} "
                f"{t_b / t_o:>7.1f}x {t_c:>8.4f} {t_b / t_c:>6.1f}x"
            )


if __name__ == "__main__":
    main()
