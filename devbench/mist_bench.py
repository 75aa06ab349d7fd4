"""MIST benchmarks: accuracy on the extended (M_test) grid and speed ratios, measured in one run.

    python -m devbench.mist_bench grid  [--seeds 2 102 202] [--estimators mist mist_qr ksg] [--splits imd oomd]
    python -m devbench.mist_bench speed [--n 500 --d 16 --datasets 64]
    python -m devbench.mist_bench train-speed [--steps 20]
    python -m devbench.mist_bench gaussians [--mist-weights W --mist-qr-weights W]
    python -m devbench.mist_bench validate W.safetensors [W ...] [--val-size 1500 --val-seed 999 --n-points 20]

`grid` builds the paper's M_test grid (n = linspace(10, 500, 20), 9 datasets per
(n, family), one random d per family, IMD + OoMD) for each seed, runs the
estimators and prints MSE by n-bin per seed and averaged over seeds, the ratios
to KSG and MIST_QR's 90% coverage and width. `speed` times MIST's batched
inference per dataset against BMI's KSG and our KSG on the same data.
`gaussians` checks the simplest case, x and y Gaussian with k correlated
coordinate pairs (including d = 1 and weak dependence): mean bias and RMSE of
MIST and MIST_QR over seeds, and how often MIST_QR's 90% interval covers.
`validate` scores checkpoints on a fresh draw of the IMD validation families
(a val_seed that training did not use): the split for choosing between runs;
`--n-points 20` puts n on the test grids' values, where n = 10 weighs as in the tables.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from benchmarks.metrics import n_bin
from estimators.synthetic.bins import N_BINS as BINS
from estimators.synthetic.bins import mse_by_bin

# Test blocks per split: the paper's M_test grid for imd and oomd; the extended corpus's hard_oomd
# block; the beyond-monotone splits as in config/beyond_monotone.yaml.
SPLIT_BLOCKS = {
    "imd": {"n": {"linspace": [10, 500, 20]}, "per_cell": 9, "dims": {"random": [2, 32]}},
    "oomd": {"n": {"linspace": [10, 500, 20]}, "per_cell": 9, "dims": {"random": [2, 32]}},
    "hard_oomd": {"n": {"linspace": [10, 500, 10]}, "per_cell": 5, "dims": {"random": [2, 32]}},
    "mixture": {"n": {"linspace": [10, 500, 10]}, "per_cell": 9, "dims": {"random": [1, 16]}},
    "mixed": {"n": {"linspace": [10, 500, 10]}, "per_cell": 9, "dims": {"random": [1, 16]}},
    "flow": {"n": {"linspace": [10, 500, 10]}, "per_cell": 9, "dims": {"random": [1, 16]}},
}


def grid_spec(seed: int, splits=("imd", "oomd")) -> dict:
    return {"seed": seed, "shards": 1, "blocks": [{"split": s, **SPLIT_BLOCKS[s]} for s in splits]}


def build_grid(seed: int, splits=("imd", "oomd"), cache: str | None = None):
    """The grid's records and datasets; with `cache`, read from / written to a pickle named by the
    spec's digest there (the Monte Carlo truths of the mixture splits take minutes to compute)."""
    import hashlib
    import json
    import pickle
    from pathlib import Path

    from benchmarks.corpora import materialise, plan

    path = None
    if cache:
        key = hashlib.sha256(json.dumps(grid_spec(seed, splits), sort_keys=True).encode()).hexdigest()[:16]
        path = Path(cache) / f"grid_{seed}_{key}.pkl"
        if path.is_file():
            with open(path, "rb") as f:
                return pickle.load(f)
    recs, data = [], []
    for desc in plan(grid_spec(seed, splits)):
        rec, x, y = materialise(desc)
        recs.append(rec)
        data.append((x, y))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump((recs, data), f)
        tmp.replace(path)
    return recs, data


def run_estimator(name: str, data, weights: str | None = None):
    import estimators

    if name == "ksg_bmi":
        from bmi.estimators import KSGEnsembleFirstEstimator

        k = KSGEnsembleFirstEstimator(neighborhoods=(5,))
        t0 = time.perf_counter()
        vals = [float(k.estimate(x, y)) for x, y in data]
        return vals, None, None, (time.perf_counter() - t0) / len(data)
    params = {"weights": weights} if weights and name.startswith("mist") else {}
    if name == "ksg":
        params = {"k": 5}
    est = estimators.get(name, **params)
    t0 = time.perf_counter()
    out = est.estimate_batch(data) if est.amortised else [est.estimate(x, y) for x, y in data]
    sec = (time.perf_counter() - t0) / len(data)
    return ([e.mi for e in out], [e.lower for e in out], [e.upper for e in out], sec)


def grid(seeds, names, weights: dict[str, str], splits=("imd", "oomd"), cache: str | None = None) -> pd.DataFrame:
    rows = []
    for seed in seeds:
        recs, data = build_grid(seed, splits, cache)
        for name in names:
            mi, lo, hi, sec = run_estimator(name, data, weights.get(name))
            for i, r in enumerate(recs):
                rows.append(
                    {
                        "seed": seed,
                        "estimator": name,
                        "split": r["split"],
                        "family": r["family"],
                        "n": r["n"],
                        "d": r["dx"],
                        "true_mi": r["true_mi"],
                        "mi": mi[i],
                        "lower": lo[i] if lo and lo[i] is not None else np.nan,
                        "upper": hi[i] if hi and hi[i] is not None else np.nan,
                        "sec_per_dataset": sec,
                    }
                )
            print(f"seed {seed}: {name} done ({sec * 1e3:.2f} ms/dataset)", flush=True)
    df = pd.DataFrame(rows)
    df.insert(df.columns.get_loc("d") + 1, "n_bin", n_bin(df["n"]))
    df["se"] = (df["mi"] - df["true_mi"]) ** 2
    return df


def report(df: pd.DataFrame) -> str:
    lines = []
    per_seed = df.groupby(["estimator", "split", "seed", "n_bin"])["se"].mean().unstack("n_bin")
    per_seed = per_seed[[b[2] for b in BINS]]
    mean = per_seed.groupby(["estimator", "split"]).mean()
    lines.append("MSE by n-bin, mean over seeds (mean of per-seed MSEs):")
    lines.append(mean.round(4).to_string())
    lines.append("\nMSE by n-bin, each seed:")
    lines.append(per_seed.round(4).to_string())
    if "ksg" in mean.index.get_level_values(0):
        for est in mean.index.get_level_values(0).unique():
            if est.startswith("mist"):
                ratio = mean.loc["ksg"] / mean.loc[est]
                lines.append(f"\nKSG MSE / {est} MSE (mean over seeds):")
                lines.append(ratio.round(1).to_string())
    iv = df[np.isfinite(pd.to_numeric(df["lower"], errors="coerce"))]
    if len(iv):
        iv = iv.assign(
            covered=(iv["lower"] <= iv["true_mi"]) & (iv["true_mi"] <= iv["upper"]), width=iv["upper"] - iv["lower"]
        )
        lines.append("\n90% interval coverage and mean width:")
        lines.append(iv.groupby(["estimator", "split"])[["covered", "width"]].mean().round(3).to_string())
        lines.append(iv.groupby(["estimator", "split", "seed"])[["covered", "width"]].mean().round(3).to_string())
    return "\n".join(lines)


def speed(n: int, d: int, datasets: int, repeats: int) -> str:
    import torch
    from bmi.estimators import KSGEnsembleFirstEstimator

    import estimators
    from estimators.synthetic.families import get_family

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    fam = get_family("multi_normal-dense-base")
    data = [fam.draw(d, d, rng).sample(n, rng) for _ in range(datasets)]
    mist = estimators.get("mist")
    mist_ns = estimators.get("mist", swap_average=False)
    ksg = estimators.get("ksg", k=5)
    bmi_ksg = KSGEnsembleFirstEstimator(neighborhoods=(5,))
    mist.estimate_batch(data[:4])
    ksg.estimate(*data[0])
    bmi_ksg.estimate(*data[0])

    def per_dataset(f):
        """(median wall, median CPU) seconds per dataset over the repeats."""
        walls, cpus = [], []
        for _ in range(repeats):
            w0, c0 = time.perf_counter(), time.process_time()
            f()
            walls.append((time.perf_counter() - w0) / datasets)
            cpus.append((time.process_time() - c0) / datasets)
        return float(np.median(walls)), float(np.median(cpus))

    rows = {
        "MIST batched (swap-averaged, default)": per_dataset(lambda: mist.estimate_batch(data)),
        "MIST batched (no swap averaging)": per_dataset(lambda: mist_ns.estimate_batch(data)),
        "MIST one dataset per call": per_dataset(lambda: [mist.estimate(x, y) for x, y in data]),
        "our KSG (k=5)": per_dataset(lambda: [ksg.estimate(x, y) for x, y in data]),
        "BMI KSG (neighborhoods=(5,))": per_dataset(lambda: [bmi_ksg.estimate(x, y) for x, y in data]),
    }
    out = [
        f"n = {n}, dx = dy = {d}, {datasets} datasets, median of {repeats} runs, torch threads = 1",
        f"{'':40s} {'wall ms':>9s} {'CPU ms':>9s}",
    ]
    out += [f"  {k:38s} {w * 1e3:9.2f} {c * 1e3:9.2f}" for k, (w, c) in rows.items()]
    for k in ("MIST batched (swap-averaged, default)", "MIST batched (no swap averaging)"):
        for ref in ("BMI KSG (neighborhoods=(5,))", "our KSG (k=5)"):
            (w, c), (rw, rc) = rows[k], rows[ref]
            out.append(f"  speed-up {k} vs {ref}: {rw / w:6.1f}x wall, {rc / c:6.1f}x CPU")
    return "\n".join(out)


def train_speed(steps: int) -> str:
    """Training throughput of the shipped MIST design (1 torch thread), measured in CPU time.

    CPU time, not wall time, because the machine is shared: the optimiser step
    (forward + backward + AdamW on a batch) and the data (generation + features)
    are timed separately; the 1-core figure runs both on one core, the
    2-process figure is what the trainer reaches with a data worker beside it.
    """
    import torch

    from estimators.mist.training import FeatureStream, build_model, merge_params
    from estimators.synthetic import metadataset

    p = merge_params({})
    model, fcfg = build_model(p)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    stream = iter(FeatureStream(metadataset.full_spec({}), fcfg, p["batch_size"], 0, True))
    c0 = time.process_time()
    batches = [next(stream) for _ in range(steps)]
    data_cpu = (time.process_time() - c0) / (steps * p["batch_size"])
    c0, w0 = time.process_time(), time.perf_counter()
    for tok, ctx, g, mi in batches:
        loss = torch.mean((model(tok, ctx, g) - mi) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    step_cpu = (time.process_time() - c0) / (steps * p["batch_size"])
    wall = (time.perf_counter() - w0) / (steps * p["batch_size"])
    return (
        f"data (generation + features): {1 / data_cpu:.0f} datasets per CPU-second\n"
        f"optimiser steps (batch {p['batch_size']}, max_rows {fcfg.max_rows}): {1 / step_cpu:.0f} datasets per "
        f"CPU-second ({1 / wall:.0f}/s wall on this shared machine)\n"
        f"one core doing both: {1 / (data_cpu + step_cpu):.0f} datasets/s; trainer + 1 data worker "
        f"(2 processes): {1 / max(data_cpu, step_cpu):.0f} datasets/s"
    )


def gaussian_check(
    weights: dict[str, str | None],
    seeds: int = 8,
    cases=((1, 0.3), (1, 0.5), (1, 0.75), (2, 0.5), (5, 0.3), (5, 0.5), (5, 0.8)),
    ns=(100, 500),
) -> pd.DataFrame:
    """Bias, RMSE and MIST_QR coverage on Gaussians with d = dx = dy and d pairs of correlation rho."""
    import estimators

    ests = {name: estimators.get(name, **({"weights": w} if w else {})) for name, w in weights.items()}
    rows = []
    for d, rho in cases:
        truth = -0.5 * d * np.log1p(-(rho**2))
        for n in ns:
            data = []
            for s in range(seeds):
                rng = np.random.default_rng([s, d, n, int(rho * 100)])
                x = rng.standard_normal((n, d))
                data.append((x, rho * x + np.sqrt(1 - rho**2) * rng.standard_normal((n, d))))
            row = {"d": d, "rho": rho, "n": n, "true_mi": round(truth, 4)}
            for name, est in ests.items():
                out = est.estimate_batch(data)
                err = np.array([e.mi for e in out]) - truth
                row[f"{name}_bias"] = round(float(err.mean()), 4)
                row[f"{name}_rmse"] = round(float(np.sqrt((err**2).mean())), 4)
                if out[0].lower is not None:
                    row[f"{name}_cover90"] = float(np.mean([e.lower <= truth <= e.upper for e in out]))
            rows.append(row)
    return pd.DataFrame(rows)


def validate(paths, val_size: int, val_seed: int, n_points: int = 0, shuffle_y: bool = False) -> pd.DataFrame:
    """MSE (median for MIST_QR) by n-bin of each checkpoint on one fresh IMD validation draw, d in [2, 32].

    n is on the training validation's grid (every 10 from 10 to 500), or, with `n_points`, on that many
    evenly spaced values as in the test corpora (20 there: n = 10, 35, 61, 87, ...). With `shuffle_y`,
    each dataset's y columns are put in a random order first: the same MI without BMI's pairing of
    x_i with y_i, which a model with `align_stats` must not rely on."""
    import estimators
    from estimators.checkpoint import read_card
    from estimators.synthetic import metadataset

    items = metadataset.validation_set(
        {"val_size": val_size, "val_seed": val_seed, "d": [2, 32], "val_n_points": n_points}
    )
    data = [(d["x"], d["y"]) for d in items]
    if shuffle_y:
        rng = np.random.default_rng([val_seed, 1])
        data = [(x, y[:, rng.permutation(y.shape[1])]) for x, y in data]
    truth = np.array([d["mi"] for d in items])
    rows = []
    for path in paths:
        kind = read_card(path)["kind"]
        pred = np.array([e.mi for e in estimators.get(kind, weights=str(path)).estimate_batch(data)])
        rows.append({"weights": str(path), "kind": kind, **mse_by_bin((pred - truth) ** 2, [d["n"] for d in items])})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("grid")
    g.add_argument("--seeds", type=int, nargs="+", default=[2, 102, 202])
    g.add_argument("--estimators", nargs="+", default=["mist", "mist_qr", "ksg"])
    g.add_argument("--splits", nargs="+", default=["imd", "oomd"], choices=sorted(SPLIT_BLOCKS))
    g.add_argument("--cache", help="keep the built grids in this directory (pickles) for later runs")
    g.add_argument("--mist-weights")
    g.add_argument("--mist-qr-weights")
    g.add_argument("--csv", help="write per-dataset results here")
    g.add_argument("--from-csv", nargs="+", help="only report, from per-dataset CSVs written by --csv")
    s = sub.add_parser("speed")
    s.add_argument("--n", type=int, default=500)
    s.add_argument("--d", type=int, default=16)
    s.add_argument("--datasets", type=int, default=64)
    s.add_argument("--repeats", type=int, default=3)
    t = sub.add_parser("train-speed")
    t.add_argument("--steps", type=int, default=20)
    gs = sub.add_parser("gaussians")
    gs.add_argument("--mist-weights")
    gs.add_argument("--mist-qr-weights")
    gs.add_argument("--seeds", type=int, default=8)
    v = sub.add_parser("validate")
    v.add_argument("weights", nargs="+")
    v.add_argument("--val-size", type=int, default=1500)
    v.add_argument("--val-seed", type=int, default=999)
    v.add_argument("--n-points", type=int, default=0, help="n on this many evenly spaced values (0: every 10)")
    v.add_argument("--shuffle-y", action="store_true", help="y's columns in a random order (no x_i-y_i pairing)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    if args.cmd == "grid" and args.from_csv:
        print(report(pd.concat([pd.read_csv(f) for f in args.from_csv], ignore_index=True)))
    elif args.cmd == "grid":
        weights = {"mist": args.mist_weights, "mist_qr": args.mist_qr_weights}
        df = grid(args.seeds, args.estimators, weights, args.splits, args.cache)
        if args.csv:
            df.to_csv(args.csv, index=False)
        print(report(df))
    elif args.cmd == "gaussians":
        df = gaussian_check({"mist": args.mist_weights, "mist_qr": args.mist_qr_weights}, args.seeds)
        print(df.to_string(index=False))
    elif args.cmd == "validate":
        print(
            validate(args.weights, args.val_size, args.val_seed, args.n_points, args.shuffle_y)
            .round(4)
            .to_string(index=False)
        )
    elif args.cmd == "speed":
        print(speed(args.n, args.d, args.datasets, args.repeats))
    else:
        print(train_speed(args.steps))


if __name__ == "__main__":
    main()
