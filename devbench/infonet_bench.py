"""InfoNet weights checked on known-truth 1-D problems, against KSG, with timings from one run.

    python -m devbench.infonet_bench [--weights estimators/weights/infonet.safetensors]
                                       [--seeds 10] [--mixtures 20] [--mc 200000] [--threads 1]

1. Bivariate Gaussians, rho in {0, 0.1, ..., 0.9}, n = 500, `--seeds` datasets each:
   Spearman of the per-rho means against the truth, MAE where the true MI <= 1 nat, worst error.
2. Held-out 1-D Gaussian mixtures (the training family, fresh seeds), n = 2000: InfoNet and KSG
   against Monte-Carlo ground truth from `--mc` samples (its standard error is printed).
3. Time per dataset at n = 500, InfoNet (batched and one at a time) against KSG, as ratios.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.stats import spearmanr


def gaussian_grid(seeds: int, n: int = 500) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    rhos = np.round(np.arange(10) / 10, 1)
    data = []
    for rho in rhos:
        for s in range(seeds):
            rng = np.random.default_rng([1000 + s, int(rho * 10)])
            z = rng.standard_normal((n, 2))
            data.append((z[:, :1], rho * z[:, :1] + np.sqrt(1 - rho**2) * z[:, 1:]))
    return rhos, data


def report_gaussian(est, seeds: int) -> None:
    rhos, data = gaussian_grid(seeds)
    truth = -0.5 * np.log(1 - rhos**2)
    vals = np.array([e.mi for e in est.estimate_batch(data)]).reshape(len(rhos), seeds)
    means = vals.mean(1)
    err = vals - truth[:, None]
    le1 = truth <= 1.0
    print(f"Gaussian check (n=500, {seeds} seeds per rho)")
    print(f"{'rho':>5} {'true':>7} {'mean':>7} {'sd':>6} {'bias':>7}")
    for r, t, m, s in zip(rhos, truth, means, vals.std(1)):
        print(f"{r:>5.1f} {t:>7.4f} {m:>7.4f} {s:>6.4f} {m - t:>+7.4f}")
    print(
        f"Spearman(means, truth) = {spearmanr(means, truth)[0]:.4f}; "
        f"MAE (true MI <= 1) = {np.abs(err[le1]).mean():.4f}; "
        f"worst |error| = {np.abs(err).max():.4f} (rho={rhos[np.abs(err).max(1).argmax()]:.1f}); "
        f"mean bias = {err.mean():+.4f}"
    )


def report_mixtures(est, ksg, count: int, mc: int, n: int = 2000, seed: int = 20261122) -> None:
    from estimators.infonet.data import MixtureSpec, mixture_mi_mc, sample_from_mixture, sample_mixture_params

    g = torch.Generator().manual_seed(seed)
    params = sample_mixture_params(count, MixtureSpec(), g)
    xy = sample_from_mixture(params, n, g).double().numpy()
    truth, se = mixture_mi_mc(params, mc, torch.Generator().manual_seed(seed + 1))
    data = [(d[:, :1], d[:, 1:]) for d in xy]
    inet = np.array([e.mi for e in est.estimate_batch(data)])
    kv = np.array([ksg.estimate(x, y).mi for x, y in data])
    print(
        f"\nHeld-out Gaussian mixtures (K~U{{1..20}}, seed {seed}), n={n}, {count} datasets; "
        f"truth by Monte Carlo with {mc} samples, standard error max {se.max():.4f}, mean {se.mean():.4f}"
    )
    print(f"{'#':>3} {'K':>3} {'truth':>7} {'se':>6} {'infonet':>8} {'ksg':>7}")
    kk = (params["weights"] > 0).sum(1).numpy()
    for i in range(count):
        print(f"{i:>3} {kk[i]:>3} {truth[i]:>7.4f} {se[i]:>6.4f} {inet[i]:>8.4f} {kv[i]:>7.4f}")
    for name, v in (("infonet", inet), ("ksg", kv)):
        e = v - truth
        print(
            f"{name:>8}: MAE {np.abs(e).mean():.4f}  bias {e.mean():+.4f}  RMSE {np.sqrt((e**2).mean()):.4f}  "
            f"worst {np.abs(e).max():.4f}  Spearman {spearmanr(v, truth)[0]:.4f}"
        )


def report_timing(est, ksg, count: int = 50, n: int = 500, repeats: int = 3) -> None:
    rng = np.random.default_rng(7)
    data = []
    for _ in range(count):
        z = rng.standard_normal((n, 2))
        data.append((z[:, :1], 0.6 * z[:, :1] + 0.8 * z[:, 1:]))

    def med(f):
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            f()
            ts.append((time.perf_counter() - t0) / count)
        return float(np.median(ts))

    est.estimate_batch(data[:2])
    ksg.estimate(*data[0])  # warm-up
    t_batch = med(lambda: est.estimate_batch(data))
    t_single = med(lambda: [est.estimate(x, y) for x, y in data])
    t_ksg = med(lambda: [ksg.estimate(x, y) for x, y in data])
    print(
        f"\nTime per dataset at n={n} ({count} datasets, median of {repeats}, torch threads "
        f"{torch.get_num_threads()}): infonet batched {t_batch * 1e3:.2f} ms, one at a time "
        f"{t_single * 1e3:.2f} ms, ksg {t_ksg * 1e3:.2f} ms; "
        f"ratio ksg/infonet: batched {t_ksg / t_batch:.2f}x, one at a time {t_ksg / t_single:.2f}x"
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--mixtures", type=int, default=20)
    ap.add_argument("--mc", type=int, default=200_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", choices=["gaussian", "mixtures", "timing"], default=None)
    ap.add_argument(
        "--no-null-correction",
        action="store_true",
        help="do not subtract the card's null offset (the default subtracts it when n_splits=0)",
    )
    ap.add_argument("--n-splits", type=int, default=0, help="cross-fitting halvings (0: same rows)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    import estimators

    est = estimators.get(
        "infonet",
        weights=args.weights,
        n_splits=args.n_splits,
        null_correction=False if args.no_null_correction else None,
    )
    ksg = estimators.get("ksg", k=5)
    print(
        f"weights: {est.weights} (steps {est.card.get('steps')}, "
        f"{est.card.get('n_parameters')} parameters, sha256 {est.card.get('sha256', '')[:12]}); "
        f"n_splits={args.n_splits}, null_correction={est.null_correction}"
    )
    if "null_offset" in est.card:
        tab = est.card["null_offset"]
        print(
            "mean estimate on independent data (same rows, from the card): "
            + ", ".join(f"n={n}: {v:+.3f}" for n, v in zip(tab["n"], tab["mi"]))
        )
    if args.only in (None, "gaussian"):
        report_gaussian(est, args.seeds)
    if args.only in (None, "mixtures"):
        report_mixtures(est, ksg, args.mixtures, args.mc)
    if args.only in (None, "timing"):
        report_timing(est, ksg)


if __name__ == "__main__":
    main()
