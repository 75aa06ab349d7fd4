"""The n-bins every report uses: the benchmark's tables and MIST's validation metrics.

Bins are closed on the right, and the first one also on the left: [10, 100], (100, 300],
(300, 500]. Sample sizes outside the paper's range get their own labels.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

N_BINS = ((10, 100, "[10,100]"), (100, 300, "(100,300]"), (300, 500, "(300,500]"))
BELOW, ABOVE = "[1,10)", "(500,inf)"


def n_bin(ns: Iterable[int]) -> np.ndarray:
    """The bin label of each sample size (object array, one per entry)."""
    n = np.asarray(list(ns) if not isinstance(ns, np.ndarray) else ns)
    out = np.full(n.shape, "other", dtype=object)
    for lo, hi, label in N_BINS:
        out[((n >= lo) if lo == N_BINS[0][0] else (n > lo)) & (n <= hi)] = label
    out[n > N_BINS[-1][1]] = ABOVE
    out[n < N_BINS[0][0]] = BELOW
    return out


def mse_by_bin(sq_err, ns) -> dict[str, float]:
    """Overall and per-bin mean of squared errors (one entry per dataset); an empty bin gives NaN."""
    sq_err, bins = np.asarray(sq_err, dtype=float), n_bin(ns)
    return {
        "mse": float(sq_err.mean()),
        **{
            label: float(sq_err[bins == label].mean()) if (bins == label).any() else float("nan")
            for _, _, label in N_BINS
        },
    }
