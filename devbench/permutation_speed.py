"""Wall time of a permutation test of independence: MIST and MIST_QR batched, against KSG.

    python -m devbench.permutation_speed                 # n = 500, 999 permutations, d = 1 and 5
    python -m devbench.permutation_speed --repeats 3

Each configuration runs `repeats` times after one warm-up (which loads the weights and starts
nothing else); the table gives the best and the median wall time, and the ratio of the median to
that of KSG (one call per permutation) in the same run, since the machines are shared.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def time_test(est, x: np.ndarray, y: np.ndarray, permutations: int, repeats: int) -> list[float]:
    from estimators.independence import independence_test

    independence_test(x, y, est, permutations=min(permutations, 63))  # warm-up
    out = []
    for r in range(repeats):
        t0 = time.perf_counter()
        independence_test(x, y, est, permutations=permutations, seed=r)
        out.append(time.perf_counter() - t0)
    return out


def run(n: int, dims: list[int], permutations: int, repeats: int, workers: list[int]) -> pd.DataFrame:
    from estimators.independence import statistic_estimator

    rng = np.random.default_rng(0)
    rows = []
    for d in dims:
        x = rng.normal(size=(n, d))
        y = np.sin(2 * x[:, :1]) + rng.normal(size=(n, d))
        methods = [("ksg", {})] + [(m, {"workers": w}) for m in ("mist", "mist_qr") for w in workers]
        for name, params in methods:
            est = statistic_estimator(name, params)
            times = time_test(est, x, y, permutations, repeats)
            rows.append({"d": d, "method": name, **params, "best_s": min(times), "median_s": float(np.median(times))})
    df = pd.DataFrame(rows)
    ref = df[df["method"] == "ksg"].set_index("d")["median_s"]
    df["vs_ksg"] = df["median_s"] / df["d"].map(ref)
    return df


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devbench.permutation_speed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--dims", default="1,5", help="dx = dy = d values")
    ap.add_argument("--permutations", type=int, default=999)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", default="1,2", help="MIST's feature workers to try")
    args = ap.parse_args(argv)
    df = run(
        args.n,
        [int(d) for d in args.dims.split(",")],
        args.permutations,
        args.repeats,
        [int(w) for w in args.workers.split(",")],
    )
    print(f"n = {args.n}, {args.permutations} permutations, {args.repeats} repeats after a warm-up")
    print(df.to_markdown(index=False, floatfmt=".3g"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
