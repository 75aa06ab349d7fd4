"""A permutation test of independence with any MI estimator as its statistic.

    >>> res = estimators.independence_test(x, y, estimator="mist", permutations=999, seed=0)
    >>> res.statistic, res.p_value, res.null_quantiles[0.95]

The statistic is the estimator's MI on (x, y); the null distribution is the same estimator on
(x, y[pi]) for `permutations` random row permutations pi, which break any dependence and keep
both marginals, ties, categories and tails included. Under independence the B + 1 datasets are
exchangeable (for i.i.d. rows), so the p-value is exact for any B and any estimator, including
ones that read the row order (MINE's minibatches): it needs no asymptotics, no Gaussianity and no
unbiased estimator. What the estimator decides is the power.

Three choices keep the test exact and sharp:
- the statistic is the *unclipped* estimate where the estimator can give one (`clip=False` for
  KSG, MIST, MIST_QR): clipping at 0 makes most null statistics tie at 0 and wastes power;
- ties between the observed and permuted statistics (discrete data can repeat a contingency
  table exactly) are broken at random (`ties="randomised"`), so that P(p <= alpha) = alpha rather
  than less; `ties="conservative"` counts every tie against rejection instead (never above alpha);
- estimators with a batch path (the amortised networks) score the data and every permutation in
  a few `estimate_batch` calls.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from estimators.base import Estimator
from estimators.discrete import Discrete
from estimators.registry import get
from estimators.units import check_unit, per_nat
from estimators.validation import column_names, validate_pair

# Statistics this close (relative) to the observed one count as tied with it: the same data in
# another row order (a repeated contingency table) gives the same MI up to rounding, which in
# the networks' float32 outputs reaches ~1e-7 relative; any real difference is far larger.
TIE_RTOL = 1e-6
TIE_ATOL = 1e-12
# The permuted copies of y handed to one `estimate_batch` call take at most this many bytes: a
# few calls for a large test, one for most (a batch path, e.g. MIST's workers, works best on all).
_CHUNK_BYTES = 1 << 28
NULL_LEVELS = (0.5, 0.9, 0.95, 0.99)


@dataclasses.dataclass
class IndependenceResult:
    """The outcome of `independence_test`. MI values are in `unit`.

    `null` holds the permuted statistics that succeeded; `null_quantiles` maps NULL_LEVELS to
    their quantiles. `p_value` is NaN when the observed statistic itself failed (`info["error"]`)."""

    statistic: float
    p_value: float
    permutations: int
    null_mean: float
    null_std: float
    null_quantiles: dict[float, float]
    null: np.ndarray
    estimator: str
    unit: str = "nats"
    seconds: float = 0.0
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.p_value))

    def reject(self, alpha: float = 0.05) -> bool:
        """Whether independence is rejected at level `alpha`."""
        return self.ok and self.p_value <= alpha

    def summary(self) -> str:
        q95 = self.null_quantiles.get(0.95, float("nan"))
        return (
            f"{self.estimator}: MI = {self.statistic:.4g} {self.unit}, p = {self.p_value:.4g} "
            f"({self.permutations} permutations; null mean {self.null_mean:.3g}, 95% {q95:.3g})"
        )


def permutation_p_value(
    observed: float, null: np.ndarray, ties: str = "randomised", rng: np.random.Generator | None = None
) -> tuple[float, int]:
    """(p-value, number of null statistics tied with `observed`) for a right-tailed test.

    With B null statistics, of which g exceed `observed` and t tie with it (within TIE_RTOL),
    "conservative" gives (1 + g + t) / (B + 1); "randomised" gives (g + U (1 + t)) / (B + 1) with
    U uniform on (0, 1], exact under exchangeability even when statistics tie."""
    null = np.asarray(null, dtype=np.float64)
    tied = np.abs(null - observed) <= TIE_RTOL * abs(observed) + TIE_ATOL
    greater = int(np.count_nonzero(null > observed) - np.count_nonzero(tied & (null > observed)))
    t = int(np.count_nonzero(tied))
    b = len(null)
    if ties == "conservative":
        return (1 + greater + t) / (b + 1), t
    if ties != "randomised":
        raise ValueError(f"ties must be 'randomised' or 'conservative', got {ties!r}")
    u = 1.0 - (rng if rng is not None else np.random.default_rng()).random()  # in (0, 1]
    return (greater + u * (1 + t)) / (b + 1), t


def statistic_estimator(estimator: str | Estimator, params: Mapping[str, Any]) -> Estimator:
    """The estimator whose MI is the test's statistic: unclipped where it offers `clip` (see the
    module doc). An Estimator instance is used as it is: build it with clip=False for full power."""
    if isinstance(estimator, Estimator):
        if params:
            raise ValueError("pass estimator parameters either in the Estimator instance or as params, not both")
        return estimator
    params = dict(params)
    from estimators.registry import estimator_class

    if "clip" in estimator_class(estimator).param_names():
        params.setdefault("clip", False)
    return get(estimator, **params)


def independence_test(
    x: Any,
    y: Any,
    estimator: str | Estimator = "mist",
    permutations: int = 999,
    seed: int = 0,
    *,
    params: Mapping[str, Any] | None = None,
    discrete: Discrete = "auto",
    unit: str = "nats",
    ties: str = "randomised",
) -> IndependenceResult:
    """Permutation test of H0: x and y are independent, with an MI estimator as the statistic.

    `estimator` is a registered name (built with `params`) or an Estimator instance;
    `permutations` is B (the p-value's resolution is 1 / (B + 1)); `seed` fixes the permutations
    and the tie-breaking, so the same call gives the same p-value. `discrete` is passed to the
    estimator for every dataset (the permutations keep each column's categories). `unit` is the
    unit of `statistic` and the null summary. Arrays or pandas DataFrames/Series are accepted."""
    check_unit(unit)
    if isinstance(permutations, bool) or not isinstance(permutations, (int, np.integer)) or permutations < 1:
        raise ValueError(f"permutations must be a positive integer, got {permutations!r}")
    if ties not in ("randomised", "conservative"):
        raise ValueError(f"ties must be 'randomised' or 'conservative', got {ties!r}")
    names = {"x_columns": column_names(x), "y_columns": column_names(y)}
    est = statistic_estimator(estimator, params or {})
    x, y = validate_pair(x, y, min_n=max(est.min_n, 2))
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(n) for _ in range(int(permutations))]
    t0 = time.perf_counter()
    values = np.empty(len(perms) + 1)
    failures: list[str] = []
    chunk = max(1, _CHUNK_BYTES // y.nbytes)
    for s in range(0, len(perms) + 1, chunk):
        batch = [(x, y if i == 0 else y[perms[i - 1]]) for i in range(s, min(s + chunk, len(perms) + 1))]
        for j, e in enumerate(est.estimate_batch(batch, discrete=discrete)):
            values[s + j] = e.mi if e.ok else np.nan
            if not e.ok:
                failures.append(str(e.info.get("error", "failed")))
    seconds = time.perf_counter() - t0
    observed, null_all = values[0], values[1:]
    null = null_all[np.isfinite(null_all)]
    info: dict[str, Any] = {
        "ties": ties,
        "seed": seed,
        "n": n,
        "estimator_params": est.get_params(),
        "quantity": est.quantity(x.shape[1], y.shape[1]),  # InfoNet beyond 1-D: sliced MI, still a valid statistic
        **{k: v for k, v in names.items() if v is not None},
    }
    if failures:
        info["failed_permutations"] = int(np.count_nonzero(~np.isfinite(null_all)))
        info["errors"] = sorted(set(failures))[:5]
    if not np.isfinite(observed) or not len(null):
        p, tied = float("nan"), 0
        info["error"] = "the estimate on the data failed" if not np.isfinite(observed) else "every permutation failed"
    else:
        p, tied = permutation_p_value(observed, null, ties, rng)
    info["tied_permutations"] = tied
    scale = per_nat(unit)
    quantiles = {q: float(np.quantile(null, q)) * scale for q in NULL_LEVELS} if len(null) else {}
    return IndependenceResult(
        statistic=float(observed) * scale,
        p_value=float(p),
        permutations=int(permutations),
        null_mean=float(null.mean()) * scale if len(null) else float("nan"),
        null_std=float(null.std()) * scale if len(null) else float("nan"),
        null_quantiles=quantiles,
        null=null * scale,
        estimator=est.name,
        unit=unit,
        seconds=seconds,
        info=info,
    )
