"""The adapter interface every estimator implements.

`Estimator.estimate(x, y)` validates once, times the call and returns an
`Estimate`. Subclasses implement `_estimate(x, y)` on clean float64 arrays of
shape (n, dx), (n, dy). Estimators with a batch path (`has_batch_path`: amortised
networks, per-dataset networks trained stacked) override `_estimate_batch` to push
many datasets through one call.

Units: subclasses compute in nats. `estimate(x, y, unit="bits")` and `estimate_batch(..., unit=...)`
convert once, at the end (`Estimate.to`); `estimators.units` holds the factors.

DataFrames: x and y may be pandas DataFrames or Series. Validation reads them as arrays (refusing
non-numeric columns by name), and the estimate keeps their column names in `info["x_columns"]` /
`info["y_columns"]` (only when they have names: `estimators.validation.column_names`).

Categorical columns: `estimate(x, y, discrete=...)` and `estimate_batch(datasets, discrete=...)`
take the spec of `estimators.discrete.categorical_columns` ("auto", True/False, or a pair
(x columns, y columns)). Only estimators with `handles_discrete` (MIST, MIST_QR) honour it; any
other refuses an explicit spec that names a categorical column, and "auto" leaves it untouched.

Errors, the same through `estimate` and `estimate_batch`:
- invalid input (NaN, wrong shape, too few rows, a bad `discrete` spec, ...) raises `ValueError`
  naming the problem (and, in a batch, the dataset's index);
- a method failure on valid input (the method raising `ValueError`, `FloatingPointError`,
  `RuntimeError` or `LinAlgError`, or returning NaN/inf) is a failed `Estimate`
  (`ok=False`, the reason in `info["error"]`), never an exception;
- any other exception (`TypeError`, `KeyError`, ...) is a bug and propagates.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from estimators.discrete import Discrete, categorical_columns
from estimators.units import check_unit, per_nat
from estimators.validation import column_names, validate_pair

Columns = tuple[list[int], list[int]]  # (categorical columns of x, of y)


@dataclasses.dataclass
class Estimate:
    """An MI estimate, in `unit` (nats unless converted: `to`).

    `lower`/`upper` hold an interval when the estimator gives one, at the level
    in `info["interval_level"]`; `quantiles` maps quantile levels to values.
    `ok` is False for a failed estimate, with the reason in `info["error"]`.
    Values in `info` (offsets, spreads) stay in nats whatever `unit` says.
    """

    mi: float
    lower: float | None = None
    upper: float | None = None
    quantiles: dict[float, float] | None = None
    seconds: float = 0.0
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    ok: bool = True
    unit: str = "nats"  # after `ok`: positional construction stays as it was

    @classmethod
    def failed(cls, reason: str, **info: Any) -> Estimate:
        return cls(mi=math.nan, ok=False, info={"error": reason, **info})

    def to(self, unit: str) -> Estimate:
        """A copy in `unit` ("nats" or "bits"): mi, lower, upper and the quantile values scaled
        (NaN stays NaN); `info` is copied, not converted. The same unit gives an equal copy."""
        factor = per_nat(unit) / per_nat(self.unit)
        return dataclasses.replace(
            self,
            mi=self.mi * factor,
            lower=None if self.lower is None else self.lower * factor,
            upper=None if self.upper is None else self.upper * factor,
            quantiles=None if self.quantiles is None else {t: v * factor for t, v in self.quantiles.items()},
            info=copy.deepcopy(self.info),  # a copy shares nothing mutable with the original
            unit=unit,
        )

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
    - `handles_discrete`: the method can treat columns as categorical. It then takes a keyword
      `discrete` in `_estimate` (one (x_cols, y_cols) pair) and `_estimate_batch` (a list of pairs,
      one per dataset), given whenever the caller passed an explicit spec, resolved and renumbered
      for the arrays without constant columns; without it (None, the caller's "auto") the method
      applies the default rule (`estimators.discrete`) itself, which picks the same columns. Columns
      it reports in `info["categorical_x"]` / `info["categorical_y"]` are renumbered back to the
      caller's columns by the base. Without `handles_discrete`, an explicit spec naming a
      categorical column is an error (`_categorical_refusal`);
    - `test_params`: cheap parameters for the conformance suite (small budgets).
    """

    name: str = ""
    min_n: int = 2
    allow_constant: bool = True
    deterministic: bool = True
    amortised: bool = False
    has_batch_path: bool = False
    uses_gpu: bool = False
    handles_discrete: bool = False
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
    def estimate(self, x: Any, y: Any, discrete: Discrete = "auto", unit: str = "nats") -> Estimate:
        """The estimate for one dataset. Invalid input raises `ValueError`; a method failure on
        valid input is a failed `Estimate` with the reason (as in `estimate_batch`).

        x and y: arrays (n, d) or (n,), or pandas DataFrames / Series (their column names go to
        `info["x_columns"]` / `info["y_columns"]`).
        `discrete` says which columns are categorical (`estimators.discrete.categorical_columns`):
        "auto" (default rule), True / False (all / none), or a pair (x columns, y columns), each a
        bool or a list of column indices. Only `handles_discrete` estimators honour it.
        `unit`: "nats" (default) or "bits", for mi, lower, upper and quantiles."""
        check_unit(unit)  # before any work: a typo should not cost an estimate
        names = _column_info(x, y)
        x, y = self.validate(x, y)
        cols = self._resolve_discrete(x, y, discrete)
        t0 = time.perf_counter()
        est = _constant_estimate(x, y)
        if est is None:
            x, y, dropped = _without_constant_columns(x, y)
            reduced = None if cols is None else _renumber(cols, dropped)
            est = _restore_columns(self._estimate_or_failed(x, y, reduced), dropped)
            est = _note_dropped(est, dropped)
        est.seconds = time.perf_counter() - t0
        est.info.setdefault("estimator", self.name)
        est.info.update(names)
        return _in_unit(_no_silent_nonfinite(est), unit)

    def estimate_batch(
        self, datasets: Sequence[tuple[Any, Any]], discrete: Discrete = "auto", unit: str = "nats"
    ) -> list[Estimate]:
        """Estimate many datasets. Input errors raise, naming the dataset index; a method failure
        on one dataset is its failed `Estimate` (the default `_estimate_batch`; an override should do
        the same; if it raises instead, so does this call, and callers fall back to `estimate`).
        `discrete` (as in `estimate`) is one spec for every dataset, resolved against each one's columns;
        `unit` (as in `estimate`) applies to every estimate. DataFrames are taken as in `estimate`.

        The wall time of the whole batch is shared evenly across its datasets,
        so `seconds` stays comparable with one-at-a-time estimators.
        """
        check_unit(unit)
        clean, cols, names = [], [], []
        for i, (x, y) in enumerate(datasets):
            names.append(_column_info(x, y))
            try:
                x, y = self.validate(x, y)
                cols.append(self._resolve_discrete(x, y, discrete))
            except ValueError as err:
                raise ValueError(f"dataset {i}: {err}") from None
            clean.append((x, y))
        if not clean:
            return []
        t0 = time.perf_counter()
        out = [_constant_estimate(x, y) for x, y in clean]
        todo = [i for i, e in enumerate(out) if e is None]
        if todo:
            reduced = [_without_constant_columns(*clean[i]) for i in todo]
            arrays = [r[:2] for r in reduced]
            if _is_auto(discrete) or not self.handles_discrete:
                ests = self._estimate_batch(arrays)  # exactly the call of an estimator without the argument
            else:
                ests = self._estimate_batch(arrays, discrete=[_renumber(cols[i], r[2]) for i, r in zip(todo, reduced)])
            for i, (_, _, dropped), est in zip(todo, reduced, ests):
                out[i] = _note_dropped(_restore_columns(est, dropped), dropped)
        per = (time.perf_counter() - t0) / len(clean)
        for est, named in zip(out, names):
            est.seconds = per
            est.info.setdefault("estimator", self.name)
            est.info.update(named)
            _no_silent_nonfinite(est)
        return [_in_unit(est, unit) for est in out]

    def quantity(self, dx: int, dy: int) -> str:
        """What the estimate measures for data of these dimensions: "mi" unless a method says
        otherwise (InfoNet: "sliced_mi" beyond 1-D). Tables keep other quantities apart, failures included."""
        return "mi"

    def validate(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        return validate_pair(x, y, min_n=self.min_n, allow_constant=self.allow_constant, extra=self._check_dims)

    def _resolve_discrete(self, x: np.ndarray, y: np.ndarray, discrete: Discrete) -> Columns | None:
        """The categorical columns an explicit spec names, for a `handles_discrete` estimator; None
        for "auto" (nothing to resolve: the method applies the default rule itself) and for an
        estimator that reads no columns as categorical. A bad spec raises `ValueError`; so does a
        spec naming a categorical column when the estimator cannot honour it (`_categorical_refusal`)."""
        if _is_auto(discrete):
            return None
        x_cols, y_cols = categorical_columns(x, y, discrete)
        if x_cols or y_cols:
            reason = self._categorical_refusal()
            if reason:
                raise ValueError(reason)
        return (x_cols, y_cols) if self.handles_discrete else None

    def _categorical_refusal(self) -> str | None:
        """Why this estimator cannot treat columns as categorical (None: it can)."""
        if self.handles_discrete:
            return None
        return (
            f"{self.name or type(self).__name__} reads every column as numbers and cannot treat columns as "
            "categorical (discrete=...); use mist or mist_qr, or one-hot encode the categorical columns"
        )

    # -- for subclasses --------------------------------------------------------
    def _estimate(self, x: np.ndarray, y: np.ndarray) -> Estimate:
        raise NotImplementedError

    def _estimate_batch(
        self, datasets: list[tuple[np.ndarray, np.ndarray]], discrete: list[Columns] | None = None
    ) -> list[Estimate]:
        """Default: one at a time, each failure recorded, never raised (as in `estimate`).
        `discrete` (only for `handles_discrete` estimators): one (x_cols, y_cols) per dataset."""
        out = []
        for i, (x, y) in enumerate(datasets):
            t0 = time.perf_counter()
            est = self._estimate_or_failed(x, y, None if discrete is None else discrete[i])
            est.seconds = time.perf_counter() - t0
            out.append(est)
        return out

    def _estimate_or_failed(self, x: np.ndarray, y: np.ndarray, discrete: Columns | None = None) -> Estimate:
        """`_estimate`, with a method failure (`METHOD_ERRORS`) returned as a failed Estimate.
        `discrete` is passed on only when given (a `handles_discrete` estimator's explicit columns)."""
        try:
            return self._estimate(x, y) if discrete is None else self._estimate(x, y, discrete=discrete)
        except METHOD_ERRORS as err:
            return Estimate.failed(f"{type(err).__name__}: {err}")

    def _check_dims(self, dx: int, dy: int) -> None:
        """Override to reject dimensions the method truly cannot handle."""


def _column_info(x: Any, y: Any) -> dict[str, list[str]]:
    """{"x_columns": [...], "y_columns": [...]} for the DataFrames / Series among x, y that have
    column names (read before validation turns them into arrays); {} for plain arrays."""
    out = {}
    for a, what in ((x, "x"), (y, "y")):
        names = column_names(a)
        if names is not None:
            out[f"{what}_columns"] = names
    return out


def _in_unit(est: Estimate, unit: str) -> Estimate:
    """`est` in `unit`: itself when already there (nats, the common case, costs nothing)."""
    return est if est.unit == unit else est.to(unit)


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


def _is_auto(discrete: Discrete) -> bool:
    return discrete is None or (isinstance(discrete, str) and discrete == "auto")


def _renumber(cols: Columns, dropped: dict[str, list[int]]) -> Columns:
    """Categorical columns (the caller's numbering) renumbered for the arrays without the constant
    columns `_without_constant_columns` dropped; a dropped column disappears."""
    out = []
    for c, what in zip(cols, ("x", "y")):
        gone = dropped.get(what, [])
        out.append([j - sum(g < j for g in gone) for j in c if j not in gone])
    return out[0], out[1]


def _original_index(j: int, gone: list[int]) -> int:
    """Column j of the array without the columns `gone` (sorted), in the caller's numbering."""
    for g in gone:
        if g <= j:
            j += 1
    return j


def _restore_columns(est: Estimate, dropped: dict[str, list[int]]) -> Estimate:
    """The categorical columns a method reports (`info["categorical_x"/"categorical_y"]`, numbered
    in the arrays it saw) back in the caller's numbering (before constant columns were dropped)."""
    for what in ("x", "y"):
        key = f"categorical_{what}"
        if key in est.info and dropped.get(what):
            gone = sorted(dropped[what])
            est.info[key] = [_original_index(int(j), gone) for j in est.info[key]]
    return est


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
