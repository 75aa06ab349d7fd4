"""The adapter interface every estimator implements.

`Estimator.estimate(x, y)` validates once, times the call and returns an
`Estimate`. Subclasses implement `_estimate(x, y)` on clean float64 arrays of
shape (n, dx), (n, dy). Amortised estimators override `_estimate_batch` to push
many datasets through one call.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Mapping, Sequence

import numpy as np

from estimators.validation import validate_pair


@dataclasses.dataclass
class Estimate:
    """An MI estimate in nats.

    `lower`/`upper` hold an interval when the estimator gives one, at the level
    in `info["interval_level"]`; `quantiles` maps quantile levels to values.
    `ok` is False for a failed estimate, with the reason in `info["error"]`.
    """

    mi: float
    lower: float | None = None
    upper: float | None = None
    quantiles: dict[float, float] | None = None
    seconds: float = 0.0
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    ok: bool = True

    @classmethod
    def failed(cls, reason: str, **info: Any) -> "Estimate":
        return cls(mi=math.nan, ok=False, info={"error": reason, **info})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if self.quantiles is not None:
            d["quantiles"] = {str(k): v for k, v in self.quantiles.items()}
        return d


class Estimator:
    """Base class. Constructor keyword arguments are the parameters.

    Class attributes describe what the method can take:
    - `name`: registry name;
    - `min_n`: fewest rows it accepts;
    - `allow_constant`: whether constant columns are acceptable input;
    - `deterministic`: same input gives the same output (used by conformance);
    - `amortised`: has a real batched path;
    - `uses_gpu`: runs on CUDA when present (the workflow then asks the scheduler for a GPU);
    - `test_params`: cheap parameters for the conformance suite (small budgets).
    """

    name: str = ""
    min_n: int = 2
    allow_constant: bool = True
    deterministic: bool = True
    amortised: bool = False
    uses_gpu: bool = False
    test_params: dict[str, Any] = {}

    def __init__(self, **params: Any) -> None:
        self.params = dict(params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    # -- public entry points -------------------------------------------------
    def estimate(self, x: Any, y: Any) -> Estimate:
        x, y = self.validate(x, y)
        t0 = time.perf_counter()
        est = _constant_estimate(x, y)
        if est is None:
            x, y, dropped = _without_constant_columns(x, y)
            est = _note_dropped(self._estimate(x, y), dropped)
        est.seconds = time.perf_counter() - t0
        est.info.setdefault("estimator", self.name)
        return _no_silent_nonfinite(est)

    def estimate_batch(self, datasets: Sequence[tuple[Any, Any]]) -> list[Estimate]:
        """Estimate many datasets. Input errors raise, naming the dataset index.

        The wall time of the whole batch is shared evenly across its datasets,
        so `seconds` stays comparable with one-at-a-time estimators.
        """
        clean = []
        for i, (x, y) in enumerate(datasets):
            try:
                clean.append(self.validate(x, y))
            except ValueError as err:
                raise ValueError(f"dataset {i}: {err}") from None
        if not clean:
            return []
        t0 = time.perf_counter()
        out = [_constant_estimate(x, y) for x, y in clean]
        todo = [i for i, e in enumerate(out) if e is None]
        if todo:
            reduced = [_without_constant_columns(*clean[i]) for i in todo]
            for i, (_, _, dropped), est in zip(todo, reduced, self._estimate_batch([r[:2] for r in reduced])):
                out[i] = _note_dropped(est, dropped)
        per = (time.perf_counter() - t0) / len(clean)
        for est in out:
            est.seconds = per
            est.info.setdefault("estimator", self.name)
            _no_silent_nonfinite(est)
        return out

    def quantity(self, dx: int, dy: int) -> str:
        """What the estimate measures for data of these dimensions: "mi" unless a method says
        otherwise (InfoNet: "sliced_mi" beyond 1-D). Tables keep other quantities apart, failures included."""
        return "mi"

    def validate(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        return validate_pair(x, y, min_n=self.min_n, allow_constant=self.allow_constant,
                             extra=self._check_dims)

    # -- for subclasses --------------------------------------------------------
    def _estimate(self, x: np.ndarray, y: np.ndarray) -> Estimate:
        raise NotImplementedError

    def _estimate_batch(self, datasets: list[tuple[np.ndarray, np.ndarray]]) -> list[Estimate]:
        """Default: one at a time, each failure recorded, never raised."""
        out = []
        for x, y in datasets:
            t0 = time.perf_counter()
            try:
                est = self._estimate(x, y)
            except (ValueError, FloatingPointError, RuntimeError, np.linalg.LinAlgError) as err:
                est = Estimate.failed(f"{type(err).__name__}: {err}")
            est.seconds = time.perf_counter() - t0
            out.append(est)
        return out

    def _check_dims(self, dx: int, dy: int) -> None:
        """Override to reject dimensions the method truly cannot handle."""


def _without_constant_columns(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, list[int]]]:
    """x and y without their constant columns (each keeps at least one: see `_constant_estimate`).
    MI(X, c; Y) = MI(X; Y), but a constant column throws rank transforms and standardisation: dropped
    here, once, every estimator answers as it would without it."""
    out, dropped = [], {}
    for a, what in ((x, "x"), (y, "y")):
        const = (a == a[0]).all(axis=0)
        if const.any():
            dropped[what] = np.flatnonzero(const).tolist()
            a = np.ascontiguousarray(a[:, ~const])
        out.append(a)
    return out[0], out[1], dropped


def _note_dropped(est: Estimate, dropped: dict[str, list[int]]) -> Estimate:
    if dropped:
        est.info["dropped_constant_columns"] = dropped
    return est


def _constant_estimate(x: np.ndarray, y: np.ndarray) -> Estimate | None:
    """MI is exactly 0 when x or y is constant (every row equal). Answered here, once, rather
    than handed to methods that standardise by a zero spread or train on a single point."""
    for a, what in ((x, "x"), (y, "y")):
        if (a == a[0]).all():
            return Estimate(mi=0.0, info={"exact": f"{what} is constant: MI = 0"})
    return None


def _no_silent_nonfinite(est: Estimate) -> Estimate:
    """An `ok` estimate must be finite: NaN or inf becomes a failed estimate with the reason."""
    if est.ok and not math.isfinite(est.mi):
        est.info["error"] = f"non-finite estimate {est.mi!r} (e.g. duplicated rows or degenerate input)"
        est.mi, est.ok = math.nan, False
    return est


def as_mapping(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(obj or {})
