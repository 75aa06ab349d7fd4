"""Percentile bootstrap intervals for any point estimator f(x, y) -> float.

Rows are resampled with replacement. Nearest-neighbour statistics are undefined
on exact ties (a duplicated row is its own neighbour at distance 0), so each
resample keeps its distinct rows only: on average 63% of n. This is recorded in
the estimate's info, and it makes the interval somewhat conservative.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


# Quantile levels reported alongside the interval, for calibration curves.
CALIBRATION_LEVELS = tuple(np.round(np.linspace(0.05, 0.95, 19), 2))


def bootstrap_values(f: Callable[[np.ndarray, np.ndarray], float], x: np.ndarray, y: np.ndarray, *,
                     n: int, seed: int, min_rows: int = 2, distinct: bool = True) -> np.ndarray:
    """The statistic on `n` resamples (fewer if some had too few distinct rows)."""
    rng = np.random.default_rng(seed)
    rows = x.shape[0]
    values = []
    for _ in range(n):
        idx = rng.integers(0, rows, size=rows)
        if distinct:
            idx = np.unique(idx)
        if idx.size < min_rows:
            continue
        values.append(f(x[idx], y[idx]))
    if not values:
        raise ValueError(f"no bootstrap resample had the {min_rows} distinct rows the estimator needs")
    return np.asarray(values)


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def percentile_quantiles(values: np.ndarray, levels=CALIBRATION_LEVELS) -> dict[float, float]:
    return {float(t): float(q) for t, q in zip(levels, np.quantile(values, levels))}
