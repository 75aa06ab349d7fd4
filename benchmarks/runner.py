"""Run one estimator over one corpus shard and write a row per dataset.

Every dataset yields a row, failed or not: invalid input, a raised error or a
non-finite value becomes `status="failed"` with the reason, so that the metrics
count failures instead of silently dropping them.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

import estimators
from benchmarks.shards import iter_shard
from estimators.atomic import atomic_path

COLUMNS = [
    "corpus",
    "estimator",
    "method",
    "id",
    "split",
    "family",
    "n",
    "dx",
    "dy",
    "rep",
    "true_mi",
    "quantity",
    "mi",
    "lower",
    "upper",
    "quantiles",
    "seconds",
    "status",
    "error",
    "info",
]

# Estimators with a batch path (`Estimator.has_batch_path`: amortised networks, per-dataset
# networks trained stacked) get their datasets in chunks of this many per call.
BATCH = 64


def _row(
    rec: dict[str, Any], est: estimators.Estimate | None, error: str | None, quantity: str = "mi"
) -> dict[str, Any]:
    """One CSV row. `quantity` is what the estimator measures on this dataset's dimensions
    (InfoNet: sliced MI beyond 1-D), recorded for failures too, so that a failure is counted
    against the estimator variant that failed."""
    row = {k: rec.get(k) for k in ("id", "split", "family", "n", "dx", "dy", "rep", "true_mi")}
    row["quantity"] = (est.info if est is not None else {}).get("quantity", quantity)
    if est is not None and est.ok and not math.isfinite(est.mi):
        error = f"non-finite estimate {est.mi}"
    if est is None or not est.ok or error:
        reason = error or (est.info.get("error") if est is not None else "unknown")
        row.update(
            mi=np.nan,
            lower=np.nan,
            upper=np.nan,
            quantiles="",
            status="failed",
            error=reason,
            seconds=est.seconds if est is not None else np.nan,
            info=json.dumps(est.info if est is not None else {}, default=str),
        )
        return row
    info = dict(est.info)
    row.update(
        mi=est.mi,
        lower=np.nan if est.lower is None else est.lower,
        upper=np.nan if est.upper is None else est.upper,
        quantiles=json.dumps({str(k): v for k, v in (est.quantiles or {}).items()}),
        seconds=est.seconds,
        status="ok",
        error="",
        info=json.dumps(info, default=str),
    )
    return row


def run_shard(
    label: str,
    entry: dict[str, Any],
    shard_path: str | os.PathLike,
    corpus: str,
    out_csv: str | os.PathLike,
    progress: bool = True,
) -> pd.DataFrame:
    est = estimators.from_config(entry)
    data = list(iter_shard(shard_path))
    rows: list[dict[str, Any]] = []
    pending: list[tuple[dict[str, Any], np.ndarray, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        try:
            outs = est.estimate_batch([(x, y) for _, x, y in pending])
            rows.extend(_row(rec, e, None, _quantity(est, rec)) for (rec, _, _), e in zip(pending, outs))
        except Exception as err:  # one bad batch must not lose the shard: fall back per dataset
            print(
                f"{label}: batched call over {len(pending)} datasets failed ({type(err).__name__}: {err}); "
                f"estimating them one at a time",
                file=sys.stderr,
            )
            for rec, x, y in pending:
                rows.append(_single(est, rec, x, y, first_error=err))
        pending.clear()

    batched = est.has_batch_path
    desc = f"{label}@{corpus}:{os.path.basename(str(shard_path))}"
    valid = []
    for rec, x, y in tqdm(data, desc=desc, disable=not progress or batched, mininterval=5):
        try:
            est.validate(x, y)
        except ValueError as err:
            rows.append(_row(rec, None, f"invalid input: {err}", _quantity(est, rec)))
            continue
        if batched:
            valid.append((rec, x, y))
        else:
            rows.append(_single(est, rec, x, y))
    # A batched call shares its wall time evenly across its datasets, so each call takes datasets of
    # similar n (then d): `seconds` then still grows with n, and per-dataset training pads less.
    valid.sort(key=lambda item: (int(item[0]["n"]), int(item[0]["dx"]) + int(item[0]["dy"])))
    for start in tqdm(range(0, len(valid), BATCH), desc=desc, disable=not progress or not batched, mininterval=5):
        pending.extend(valid[start : start + BATCH])
        flush()
    df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("corpus", "estimator", "method")])
    df.insert(0, "method", est.name)
    df.insert(0, "estimator", label)
    df.insert(0, "corpus", corpus)
    df = df.sort_values("id", kind="stable").reset_index(drop=True)
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    return df


def _quantity(est: estimators.Estimator, rec: dict[str, Any]) -> str:
    return est.quantity(int(rec["dx"]), int(rec["dy"]))


def _single(est, rec, x, y, first_error: Exception | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        e = est.estimate(x, y)
        if first_error is not None:  # kept with the result: the batched path has a bug to find
            e.info["batch_error"] = f"{type(first_error).__name__}: {first_error}"
        return _row(rec, e, None, _quantity(est, rec))
    except Exception as err:  # recorded, never raised: the other datasets' results are kept
        e = estimators.Estimate.failed(f"{type(err).__name__}: {err}")
        e.seconds = time.perf_counter() - t0
        return _row(rec, e, None, _quantity(est, rec))
