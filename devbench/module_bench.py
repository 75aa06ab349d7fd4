"""The differentiable MIST module against `estimate()`: agreement on validation datasets of the
training families, per soft-rank temperature.

    python -m devbench.module_bench                        # 500 datasets, temperatures 0 and the default
    python -m devbench.module_bench --val-seed 777 --size 200 --temperatures 0.005 0.01 0.02 0.05

The datasets are the card's validation set (`estimators.synthetic.metadataset.validation_set` with the
shipped card's data spec; its seed unless `--val-seed`): the training families' IMD and `train_beyond`
datasets, n 10..500. The default temperature was chosen on `--val-seed 777 --size 200`, never on the
card's own validation datasets, which report the figure. Reported per estimator and temperature: the
median, 90th percentile and largest |module - estimate()| in nats, and both MSEs against the true MI.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

import estimators
from estimators.mist.module import DEFAULT_TEMPERATURE
from estimators.synthetic import metadataset


def agreement(name: str, temperatures, size: int, val_seed: int | None) -> list[dict]:
    est = estimators.get(name)
    spec = dict(est.card["training"]["data_spec"], val_size=size)
    if val_seed is not None:
        spec["val_seed"] = val_seed
    items = metadataset.validation_set(spec)
    want = np.array([e.mi for e in est.estimate_batch([(d["x"], d["y"]) for d in items])])
    truth = np.array([d["mi"] for d in items])
    rows = []
    for t in temperatures:
        mod = est.module(temperature=t)
        with torch.no_grad():
            got = []
            for d in items:
                out = mod(torch.from_numpy(d["x"]), torch.from_numpy(d["y"]))
                got.append(float(out[0] if isinstance(out, tuple) else out))
        gap = np.abs(np.array(got) - want)
        rows.append(
            dict(
                estimator=name,
                temperature=t,
                datasets=len(items),
                median=np.median(gap),
                p90=np.quantile(gap, 0.9),
                max=gap.max(),
                mse_module=np.mean((np.array(got) - truth) ** 2),
                mse_estimate=np.mean((want - truth) ** 2),
            )
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--estimators", nargs="*", default=["mist", "mist_qr"])
    ap.add_argument("--temperatures", type=float, nargs="*", default=[0.0, DEFAULT_TEMPERATURE])
    ap.add_argument("--size", type=int, default=500)
    ap.add_argument("--val-seed", type=int, default=None, help="default: the card's validation seed")
    args = ap.parse_args(argv)
    rows = [r for name in args.estimators for r in agreement(name, args.temperatures, args.size, args.val_seed)]
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4f"))


if __name__ == "__main__":
    main()
