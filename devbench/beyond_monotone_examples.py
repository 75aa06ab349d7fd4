"""Three examples beyond monotone dependence, each over 10 seeds: KSG, the Gaussian reference, MIST
and MIST_QR (shipped weights) against the true MI.

    taskset -c 1 python -m devbench.beyond_monotone_examples [--seeds 10] [--mist-weights W --mist-qr-weights W]

- `mixture d=1`: a fixed three-component Gaussian mixture in the joint (x, y) space, dx = dy = 1,
  n = 500. Weights (0.4, 0.3, 0.3); component means (x, y) = (-2, 2), (0, -2), (2, 2), unit
  variances and x-y correlations +0.6, -0.6, +0.6: a V shape, multimodal and non-monotone
  (y is high at both ends of x).
- `mixture d=4`: the same per coordinate pair (x_i, y_i), i < 4, with one component label shared by
  all pairs, dx = dy = 4, n = 500.
- `discrete x`: x uniform on {0, 1, 2}, y = x + N(0, 1), n = 1000.

The mixtures' MI is the Monte Carlo estimate of `estimators.synthetic.mixture_families`
(stratified by component, with a control variate) from the exact densities, with its standard
error. The discrete example's MI is I = h(Y) - h(Y | X) = h(Y) - log(2 pi e) / 2, with h(Y) by
numerical integration of the three-component density of y.

Prints a Markdown table: mean estimate +- sd over seeds (MIST_QR: its median), and how many of
MIST_QR's 90% intervals cover the truth.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import integrate, stats

from estimators.synthetic.mixture_families import Mixture, mixture_mi

ESTIMATORS = {
    "ksg": {"k": 5},
    "gaussian": {"method": "exact"},
    "mist": {},
    "mist_qr": {},
}
LABELS = {"ksg": "KSG", "gaussian": "Gaussian", "mist": "MIST", "mist_qr": "MIST_QR (median)"}
MC_SE = 0.002  # the mixtures' Monte Carlo standard error target, nats


def v_mixture(d: int) -> Mixture:
    """The V-shaped three-component mixture, repeated over d coordinate pairs with a shared label."""
    weights = np.array([0.4, 0.3, 0.3])
    mean_xy = np.array([[-2.0, 2.0], [0.0, -2.0], [2.0, 2.0]])
    rhos = np.array([0.6, -0.6, 0.6])
    k = len(weights)
    means = np.concatenate([np.repeat(mean_xy[:, :1], d, 1), np.repeat(mean_xy[:, 1:], d, 1)], axis=1)
    covs = np.zeros((k, 2 * d, 2 * d))
    for j in range(k):
        covs[j] = np.eye(2 * d)
        idx = np.arange(d)
        covs[j, idx, d + idx] = covs[j, d + idx, idx] = rhos[j]
    return Mixture(weights, means, covs, dx=d)


def discrete_mi() -> float:
    """I(X; Y) for X uniform on {0, 1, 2}, Y = X + N(0, 1), by numerical integration of h(Y)."""

    def neg_plogp(y: float) -> float:
        p = stats.norm.pdf(y - np.arange(3)).mean()
        return -p * np.log(p) if p > 0 else 0.0

    h_y, err = integrate.quad(neg_plogp, -12.0, 14.0, epsabs=1e-12, epsrel=1e-12, limit=200)
    if err > 1e-8:
        raise RuntimeError(f"h(Y) integration error {err:.1e}")
    return h_y - 0.5 * np.log(2 * np.pi * np.e)


def examples(seeds: int):
    """[(name, n, true MI, its standard error, [(x, y) per seed])]."""
    out = []
    for i, d in enumerate((1, 4)):
        mix = v_mixture(d)
        mi, se, _ = mixture_mi(mix, seed=1000 + d, stop_se=MC_SE)
        data = [mix(500, np.random.default_rng([s, i])) for s in range(seeds)]
        out.append((f"Gaussian mixture (V shape, K = 3), dx = dy = {d}", 500, mi, se, data))
    data = []
    for s in range(seeds):
        rng = np.random.default_rng([s, 2])
        x = rng.integers(0, 3, size=(1000, 1)).astype(float)
        data.append((x, x + rng.standard_normal((1000, 1))))
    out.append(("x uniform on {0, 1, 2}, y = x + N(0, 1)", 1000, discrete_mi(), 0.0, data))
    return out


def run(seeds: int, weights: dict[str, str | None] | None = None) -> str:
    import estimators

    weights = weights or {}
    ests = {
        name: estimators.get(name, **params, **({"weights": weights[name]} if weights.get(name) else {}))
        for name, params in ESTIMATORS.items()
    }
    head = ["example", "n", "true MI", *(LABELS[n] for n in ests), "MIST_QR 90% covers"]
    lines = ["| " + " | ".join(head) + " |", "| --- | ---: | ---: | " + " | ".join(["---:"] * (len(ests) + 1)) + " |"]
    t0 = time.perf_counter()
    for name, n, truth, se, data in examples(seeds):
        cells = [name, str(n), f"{truth:.3f}" + (f" ± {se:.3f} (MC SE)" if se else "")]
        covers = None
        for est_name, est in ests.items():
            out = est.estimate_batch(data) if est.amortised else [est.estimate(x, y) for x, y in data]
            if not all(e.ok for e in out):
                raise RuntimeError(f"{est_name} failed on {name}: {[e.info.get('error') for e in out if not e.ok]}")
            v = np.array([e.mi for e in out])
            cells.append(f"{v.mean():.3f} ± {v.std(ddof=1):.3f}")
            if est_name == "mist_qr":
                covers = sum(e.lower <= truth <= e.upper for e in out)
                width = np.mean([e.upper - e.lower for e in out])
        cells.append(f"{covers}/{len(data)} (width {width:.2f})")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        f"\n{seeds} seeds per example; mean ± sd over seeds. {time.perf_counter() - t0:.0f} s "
        "(data, truths and estimates)."
    )
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--mist-weights", help="MIST weights (default: shipped)")
    ap.add_argument("--mist-qr-weights", help="MIST_QR weights (default: shipped)")
    args = ap.parse_args(argv)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    with threadpool_limits(1):
        print(run(args.seeds, {"mist": args.mist_weights, "mist_qr": args.mist_qr_weights}))


if __name__ == "__main__":
    main()
