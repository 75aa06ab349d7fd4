"""Conditional MI estimators on Gaussian tasks with analytic CMI (`estimators.synthetic.cmi_tasks`).

    python -m devbench.cmi_bench                       # KSG-CMI, Gaussian closed form, chain-rule KSG
    python -m devbench.cmi_bench --estimators mist     # also the chain rule with MIST (one instance)

Tasks: dx = dy = dz = d for each d in --dims, each --strengths (the direct X -> Y path; 0 is
conditional independence), --seeds seeds, n rows. Prints, per d and estimator, the MSE and the
mean bias over strengths and seeds, then the mean estimate per (d, strength) beside the truth.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np

BUILT_IN = ("ksg_cmi", "gaussian", "chain_ksg")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--dims", type=int, nargs="+", default=[1, 2, 3, 5, 10])
    ap.add_argument("--strengths", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--estimators", nargs="*", default=[], help="registered names, run through the chain rule")
    args = ap.parse_args(argv)

    import estimators
    from estimators.conditional import conditional_mi
    from estimators.synthetic.cmi_tasks import analytic_mi, gaussian_cmi_task, sample

    extra = {name: estimators.get(name) for name in args.estimators}  # built once: no reload per task
    methods = {
        "ksg_cmi": lambda x, y, z: conditional_mi(x, y, z, estimator="ksg"),
        "gaussian": lambda x, y, z: conditional_mi(x, y, z, estimator="gaussian"),
        "chain_ksg": lambda x, y, z: conditional_mi(x, y, z, estimator="ksg", chain_rule=True),
        **{f"chain_{k}": (lambda x, y, z, e=e: conditional_mi(x, y, z, estimator=e)) for k, e in extra.items()},
    }
    rows = []  # (d, strength, seed, truth, mi(X;Y), {method: estimate})
    seconds = defaultdict(float)
    for d in args.dims:
        for strength in args.strengths:
            for seed in range(args.seeds):
                cov, truth = gaussian_cmi_task(d, d, d, strength, seed)
                x, y, z = sample(cov, d, d, d, args.n, np.random.default_rng(1000 + seed))
                out = {}
                for name, f in methods.items():
                    t0 = time.perf_counter()
                    est = f(x, y, z)
                    seconds[name] += time.perf_counter() - t0
                    out[name] = est.mi if est.ok else np.nan
                rows.append((d, strength, seed, truth, analytic_mi(cov, d, d), out))

    names = list(methods)
    print(f"n = {args.n}, dx = dy = dz = d, strengths {args.strengths}, {args.seeds} seeds; nats\n")
    print("MSE (mean bias) over strengths and seeds:\n")
    print("| d | CMI range | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    total = defaultdict(list)
    for d in args.dims:
        sub = [r for r in rows if r[0] == d]
        truth = np.array([r[3] for r in sub])
        cells = []
        for name in names:
            err = np.array([r[5][name] for r in sub]) - truth
            total[name].extend(err)
            cells.append(f"{np.nanmean(err**2):.4g} ({np.nanmean(err):+.3f})")
        print(f"| {d} | {truth.min():.2f}-{truth.max():.2f} | " + " | ".join(cells) + " |")
    cells = [f"{np.nanmean(np.square(total[n])):.4g} ({np.nanmean(total[n]):+.3f})" for n in names]
    print("| all | | " + " | ".join(cells) + " |")
    failed = {n: int(np.isnan(total[n]).sum()) for n in names if np.isnan(total[n]).any()}
    if failed:
        print(f"\nfailed estimates (left out of the means): {failed}")

    print("\nMean estimate per task (truth = CMI; MI = I(X;Y), what ignoring Z would estimate):\n")
    print("| d | strength | CMI | MI | " + " | ".join(names) + " |")
    print("|---|---|---|---|" + "---|" * len(names))
    for d in args.dims:
        for strength in args.strengths:
            sub = [r for r in rows if r[0] == d and r[1] == strength]
            mean = {n: np.nanmean([r[5][n] for r in sub]) for n in names}
            truth, mi = np.mean([r[3] for r in sub]), np.mean([r[4] for r in sub])
            print(
                f"| {d} | {strength:g} | {truth:.3f} | {mi:.3f} | " + " | ".join(f"{mean[n]:.3f}" for n in names) + " |"
            )
    print("\nseconds in total: " + ", ".join(f"{n} {seconds[n]:.1f}" for n in names))


if __name__ == "__main__":
    main()
