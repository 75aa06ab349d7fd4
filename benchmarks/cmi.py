"""The conditional-MI corpus: jointly Gaussian (X, Y, Z) with analytic I(X; Y | Z), and its scores.

The model (`estimators.synthetic.cmi_tasks`): X = A Z + e_x, Y = B Z + C X + e_y, so X and Y are
dependent through Z at every strength and directly through C at strength > 0; strength 0 is
conditional independence (CMI = 0 with MI > 0). dx = dy = dz = d.

KSG and the Gaussian reference estimate CMI directly (Frenzel-Pompe; the closed form); every other
estimator goes through the chain rule I(X; Y, Z) - I(X; Z) (`estimators.conditional`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from estimators.atomic import atomic_path
from estimators.synthetic.cmi_tasks import analytic_mi, gaussian_cmi_task, sample
from estimators.units import per_nat

DIRECT = ("ksg", "gaussian")  # estimators with a CMI method of their own


def tasks(cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per dataset: n, d, strength, rep, the model's seed, the analytic CMI and MI."""
    rows = []
    base = int(cfg.get("seed", 0))
    for n in cfg["n"]:
        for d in cfg["dims"]:
            for s in cfg["strengths"]:
                for rep in range(int(cfg["reps"])):
                    seed = int(
                        np.random.SeedSequence([base, int(n), int(d), int(round(1000 * s)), rep]).generate_state(1)[0]
                    )
                    cov, cmi = gaussian_cmi_task(d, d, d, float(s), seed)
                    rows.append(
                        dict(
                            n=int(n),
                            d=int(d),
                            strength=float(s),
                            rep=rep,
                            seed=seed,
                            true_cmi=cmi,
                            true_mi=analytic_mi(cov, d, d),
                        )
                    )
    return rows


def build(cfg: Mapping[str, Any], path: str | Path) -> None:
    """The corpus as one .npz: the task table (JSON) and x, y, z of every dataset (x_0, y_0, z_0, ...)."""
    table = tasks(cfg)
    arrays: dict[str, np.ndarray] = {"tasks": np.array(pd.DataFrame(table).to_json(orient="records"))}
    for i, t in enumerate(table):
        cov, _ = gaussian_cmi_task(t["d"], t["d"], t["d"], t["strength"], t["seed"])
        x, y, z = sample(cov, t["d"], t["d"], t["d"], t["n"], np.random.default_rng(t["seed"] + 1))
        arrays.update({f"x_{i}": x, f"y_{i}": y, f"z_{i}": z})
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load(path: str | Path) -> tuple[pd.DataFrame, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    with np.load(path) as z:
        table = pd.read_json(str(z["tasks"]), orient="records")
        data = [(z[f"x_{i}"], z[f"y_{i}"], z[f"z_{i}"]) for i in range(len(table))]
    return table, data


def estimate(label: str, entry: Mapping[str, Any], path: str | Path) -> pd.DataFrame:
    """Every dataset's CMI from the estimator `entry` ({"estimator", "params"}), labelled `label`."""
    from estimators import get
    from estimators.conditional import conditional_mi

    table, data = load(path)
    name, params = entry["estimator"], dict(entry.get("params") or {})
    if name == "gaussian":
        target, params = "gaussian", {}  # the closed form has no parameters (the MI's `method` is moot)
    elif name == "ksg":
        target = "ksg"
    else:
        target = get(name, **params)  # built once: the chain rule runs it on every dataset
        params = {}
    rows = []
    for t, (x, y, z) in zip(table.to_dict("records"), data):
        est = conditional_mi(x, y, z, target, **params)
        rows.append(
            {
                **t,
                "method": label,
                "via": est.info.get("method", name),
                "cmi": est.mi,
                "ok": est.ok,
                "lower": est.lower,
                "upper": est.upper,
                "seconds": est.seconds,
            }
        )
    return pd.DataFrame(rows)


MI_COLUMNS = ("cmi", "true_cmi", "true_mi", "lower", "upper")


def summary(df: pd.DataFrame, unit: str = "nats") -> pd.DataFrame:
    """MSE, bias and mean |error| per method and d (and over all d), in `unit`, with the share of
    failures and, where intervals exist, their coverage of the analytic CMI."""
    df = df.assign(**{c: df[c] * per_nat(unit) for c in MI_COLUMNS if c in df})
    ok = df[df["ok"]].assign(err=lambda d: d["cmi"] - d["true_cmi"])
    ok = ok.assign(covered=(ok["lower"] <= ok["true_cmi"]) & (ok["true_cmi"] <= ok["upper"]))
    rows = []
    for keys, g in [*ok.groupby(["method", "d"]), *((k, g) for k, g in ok.groupby("method"))]:
        method, d = keys if isinstance(keys, tuple) else (keys, "all")
        has_int = g["lower"].notna()
        rows.append(
            dict(
                method=method,
                d=d,
                datasets=len(g),
                failed=int(((df["method"] == method) & ~df["ok"] & ((df["d"] == d) if d != "all" else True)).sum()),
                mse=float((g["err"] ** 2).mean()),
                bias=float(g["err"].mean()),
                mae=float(g["err"].abs().mean()),
                coverage=float(g.loc[has_int, "covered"].mean()) if has_int.any() else np.nan,
                median_seconds=float(g["seconds"].median()),
            )
        )
    return pd.DataFrame(rows)
