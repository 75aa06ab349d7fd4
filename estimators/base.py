"""The adapter interface every estimator implements.

`Estimator.estimate(x, y)` validates once, times the call and returns an
`Estimate`. Subclasses implement `_estimate(x, y)` on clean float64 arrays of
shape (n, dx), (n, dy). Estimators with a batch path (`has_batch_path`: amortised
networks, per-dataset networks trained stacked) override `_estimate_batch` to push
many datasets through one call.

Errors, the same through `estimate` and `estimate_batch`:
- invalid input (NaN, wrong shape, too few rows, ...) raises `ValueError` naming the
  problem (and, in a batch, the dataset's index);
- a method failure on valid input (the method raising `ValueError`, `FloatingPointError`,
  `RuntimeError` or `LinAlgError`, or returning NaN/inf) is a failed `Estimate`
  (`ok=False`, the reason in `info["error"]`), never an exception;
- any other exception (`TypeError`, `KeyError`, ...) is a bug and propagates.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

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
    def failed(cls, reason: str, **info: Any) -> Estimate:
        return cls(mi=math.nan, ok=False, info={"error": reason, **info})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if self.quantiles is not None:
            d["quantiles"] = {str(k): v for k, v in self.quantiles.items()}
        return d


# What a method may raise on valid input: its failure, recorded as a failed Estimate. Anything
# else (TypeError, KeyError, AttributeError, ...) is a bug and propagates.
METHOD_ERRORS: tuple[type[BaseException], ...] = (ValueError, FloatingPointError, RuntimeError, np.linalg.LinAlgError)


class Estimator:
    """Base class. The constructor's keyword arguments are the parameters (scikit-learn style):
    a subclass declares them in its `__init__` signature, validates them and passes them on to
    `Estimator.__init__(**params)`, which stores them in `self.params`; `get_params()` reads them
    back by the signature's names. A subclass without an `__init__` of its own takes none.

    Class attributes describe what the method can take:
    - `name`: registry name;
    - `min_n`: fewest rows it accepts;
    - `allow_constant`: whether constant columns are acceptable input;
    - `deterministic`: same input gives the same output (used by conformance);
    - `amortised`: a trained network estimates by inference alone, nothing is fitted per dataset
      (MIST, InfoNet): batched and one-at-a-time outputs agree up to float reassociation;
    - `has_batch_path`: `_estimate_batch` does better than one `_estimate` per dataset (amortised
      networks: one forward pass; per-dataset training: networks stacked into one), so callers
      (`benchmarks.runner`) should hand it many datasets per `estimate_batch` call. Unless a class
      sets it, it is True exactly when the class overrides `_estimate_batch`;
    - `uses_gpu`: runs on CUDA when present (the workflow then asks the scheduler for a GPU);
    - `test_params`: cheap parameters for the conformance suite (small budgets).
    """

    name: str = ""
    min_n: int = 2
    allow_constant: bool = True
    deterministic: bool = True
    amortised: bool = False
    has_batch_path: bool = False
    uses_gpu: bool = False
    test_params: dict[str, Any] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # `has_batch_path` defaults to "overrides `_estimate_batch`" unless a class on the way down
        # from Estimator declared it in its body.
        for klass in cls.__mro__:
            if klass is Estimator:
                break
            if "has_batch_path" in vars(klass) and not vars(klass).get("_has_batch_path_derived"):
                return
        cls.has_batch_path = cls._estimate_batch is not Estimator._estimate_batch
        cls._has_batch_path_derived = True

    def __init__(self, **params: Any) -> None:
        if type(self).__init__ is Estimator.__init__ and params:
            raise TypeError(
                f"{type(self).__name__} takes no parameters (its class defines no __init__), got {sorted(params)}"
            )
        self.params = dict(params)

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        """The constructor's parameter names, in signature order, read without building anything:
        those of `cls.__init__`, then, while an `__init__` forwards `**kwargs`, those of the next
        `__init__` up the MRO; `**kwargs` that reach `Estimator.__init__` add only the class's
        `extra_params` (keywords a family of estimators accepts without naming them)."""
        names: list[str] = []
        for klass in cls.__mro__:
            if klass is Estimator or klass is object:
                names += [n for n in getattr(cls, "extra_params", ()) if n not in names]
                break
            if "__init__" not in vars(klass):
                continue
            forwards = False
            for p in list(inspect.signature(vars(klass)["__init__"]).parameters.values())[1:]:  # not self
                if p.kind is p.VAR_POSITIONAL:
                    continue
                if p.kind is p.VAR_KEYWORD:
                    forwards = True
                elif p.name not in names:
                    names.append(p.name)
            if not forwards:
                break
        return tuple(names)

    def get_params(self) -> dict[str, Any]:
        """{parameter: value} for every parameter of the constructor's signature, in its order.

        Values are those the constructor stored (`self.params`, after its own normalisation,
        e.g. `k` as an int), else the attribute of that name. `type(est)(**est.get_params())`
        builds an equal estimator."""
        out = {}
        for name in self.param_names():
            if name in self.params:
                out[name] = self.params[name]
            elif hasattr(self, name):
                out[name] = getattr(self, name)
            else:
                raise AttributeError(
                    f"{type(self).__name__}.__init__ takes {name!r} but stores it neither in "
                    f"self.params (pass it to Estimator.__init__) nor as self.{name}"
                )
        return out

    def __repr__(self) -> str:
        try:
            params = self.get_params()
        except AttributeError:  # a class that does not store a parameter: show what it stored
            params = self.params
        args = ", ".join(f"{k}={v!r}" for k, v in params.items())
        return f"{type(self).__name__}({args})"

    # -- public entry points -------------------------------------------------
    def estimate(self, x: Any, y: Any) -> Estimate:
        """The estimate for one dataset. Invalid input raises `ValueError`; a method failure on
        valid input is a failed `Estimate` with the reason (as in `estimate_batch`)."""
        x, y = self.validate(x, y)
        t0 = time.perf_counter()
        est = _constant_estimate(x, y)
        if est is None:
            x, y, dropped = _without_constant_columns(x, y)
            est = _note_dropped(self._estimate_or_failed(x, y), dropped)
        est.seconds = time.perf_counter() - t0
        est.info.setdefault("estimator", self.name)
        return _no_silent_nonfinite(est)

    def estimate_batch(self, datasets: Sequence[tuple[Any, Any]]) -> list[Estimate]:
        """Estimate many datasets. Input errors raise, naming the dataset index; a method failure
        on one dataset is its failed `Estimate` (the default `_estimate_batch`; an override should do
        the same; if it raises instead, so does this call, and callers fall back to `estimate`).

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
        return validate_pair(x, y, min_n=self.min_n, allow_constant=self.allow_constant, extra=self._check_dims)

    # -- for subclasses --------------------------------------------------------
    def _estimate(self, x: np.ndarray, y: np.ndarray) -> Estimate:
        raise NotImplementedError

    def _estimate_batch(self, datasets: list[tuple[np.ndarray, np.ndarray]]) -> list[Estimate]:
        """Default: one at a time, each failure recorded, never raised (as in `estimate`)."""
        out = []
        for x, y in datasets:
            t0 = time.perf_counter()
            est = self._estimate_or_failed(x, y)
            est.seconds = time.perf_counter() - t0
            out.append(est)
        return out

    def _estimate_or_failed(self, x: np.ndarray, y: np.ndarray) -> Estimate:
        """`_estimate`, with a method failure (`METHOD_ERRORS`) returned as a failed Estimate."""
        try:
            return self._estimate(x, y)
        except METHOD_ERRORS as err:
            return Estimate.failed(f"{type(err).__name__}: {err}")

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
