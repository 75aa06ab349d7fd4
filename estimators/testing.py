"""Public conformance checks for estimators, in-tree or from another package.

    >>> from estimators.testing import check_estimator
    >>> check_estimator("ksg")                          # a registered name
    >>> check_estimator(MyMethod)                       # a class (its `test_params`)
    >>> check_estimator(MyMethod(steps=50), skip=["dependence_scores_above_independence"])

`check_estimator` runs every check in `CHECKS` (or those named) and raises `AssertionError`
naming each failed check; `on_fail=None` returns {check: None or the failure} instead. The
checks are about the interface, not accuracy (one weak accuracy check aside): output type,
1-D input, row-order invariance, clear `ValueError`s for invalid input, batch = single,
constant input, a misspelt parameter, parameters read back from the constructor's signature,
and the fixed table of bad and degenerate inputs (`CASES`), classified by `classify`:

- `rejected`: a `ValueError` raised by our own code (the `estimators` package or the
  estimator's own package), whose message names the problem;
- `finite`: an `ok` estimate with a finite value (the documented answer for degenerate
  but valid input: constant columns, duplicated rows, large values, the smallest n);
- `failed`: an `Estimate` with `ok=False` and a reason in `info["error"]`;

and, all of them bugs:

- `CRASH`: any other exception, or a `ValueError` raised inside a third-party library
  (its message is not ours and does not name the input's problem);
- `SILENT-NONFINITE`: an `ok` estimate whose value is NaN or inf;
- `HANG`: no answer within the time limit.

No test framework is needed: the module imports numpy and this package only.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np

from estimators.base import Estimate, Estimator
from estimators.registry import estimator_class

__all__ = [
    "CASES",
    "CHECKS",
    "Case",
    "Outcome",
    "accepted_params",
    "check_estimator",
    "classify",
    "expected_ok",
    "is_trained",
    "make",
    "outcome",
    "params_for",
    "run_case",
]

# Smaller budgets still for the per-dataset-trained estimators (any that take `steps`), for the
# bad-input cases: they are about robustness, not accuracy. Applied on top of the class's test_params.
TRAINED_BUDGET = {"steps": 20, "eval_every": 10, "patience": 1, "batch": 16, "mc_passes": 1, "group_size": 4}
# Cost knobs of any estimator that takes them (InfoNet's random projections).
CHEAP = {"n_projections": 16}
GOOD = ("rejected", "finite", "failed")
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


# -- parameters -------------------------------------------------------------------
def _as_class(est: str | type[Estimator] | Estimator) -> type[Estimator]:
    if isinstance(est, str):
        return estimator_class(est)
    if isinstance(est, Estimator):
        return type(est)
    if isinstance(est, type) and issubclass(est, Estimator):
        return est
    raise TypeError(f"expected an estimator name, class or instance, got {est!r}")


def accepted_params(cls: str | type[Estimator] | Estimator) -> set[str]:
    """The parameter names the constructor takes (its signature; `Estimator.param_names`)."""
    return set(_as_class(cls).param_names())


def is_trained(est: str | type[Estimator] | Estimator) -> bool:
    """Per-dataset-trained: takes a training budget (`steps`)."""
    return "steps" in accepted_params(est)


def params_for(est: str | type[Estimator]) -> dict[str, Any]:
    """The class's `test_params`, made cheaper still for the bad-input cases (`CHEAP`, `TRAINED_BUDGET`)."""
    cls = _as_class(est)
    p = dict(cls.test_params)
    acc = accepted_params(cls)
    p.update({k: v for k, v in CHEAP.items() if k in acc and k not in p})
    if is_trained(cls):
        p.update({k: v for k, v in TRAINED_BUDGET.items() if k in acc})
    return p


@cache
def make(name: str) -> Estimator:
    """The registered estimator `name` with `params_for(name)`, built once."""
    return estimator_class(name)(**params_for(name))


# -- classifying an outcome ----------------------------------------------------------
@dataclasses.dataclass
class Outcome:
    kind: str  # rejected | finite | failed | CRASH | SILENT-NONFINITE | HANG | n/a
    detail: str

    @property
    def good(self) -> bool:
        return self.kind in GOOD

    def cell(self, width: int = 70) -> str:
        text = f"{self.kind}: {self.detail}" if self.detail else self.kind
        text = " ".join(text.split()).replace("|", "/")
        return text if len(text) <= width else text[: width - 1] + "…"


class _Timeout(Exception):
    pass


def _own_dirs(cls: type | None) -> tuple[str, ...]:
    """Where "our own code" lives: this package, and the top-level package (or module file) that
    defines the estimator class, so that a plugin's own ValueErrors count as its own."""
    dirs = [_PACKAGE_DIR]
    top = sys.modules.get(cls.__module__.split(".")[0]) if cls is not None else None
    if top is not None and top.__name__ != "estimators":
        if getattr(top, "__path__", None):
            dirs += [os.path.abspath(p) + os.sep for p in top.__path__]
        elif getattr(top, "__file__", None):
            dirs.append(os.path.abspath(top.__file__))
    return tuple(dirs)


def _raised_by(err: BaseException, ours: tuple[str, ...]) -> bool:
    tb = err.__traceback__
    last = None
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return last is not None and os.path.abspath(last).startswith(ours)


def classify(call: Callable[[], Any], timeout: float = 120.0, ours: tuple[str, ...] = (_PACKAGE_DIR,)) -> Outcome:
    """Run `call()` (an estimate) and classify what happened. `ours`: path prefixes of the code
    whose ValueErrors are "rejected" (elsewhere: CRASH). A time limit needs SIGALRM (not on Windows)."""

    def alarm(signum, frame):
        raise _Timeout()

    use_alarm = hasattr(signal, "SIGALRM")
    if use_alarm:
        old = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = call()
    except _Timeout:
        return Outcome("HANG", f"no answer in {timeout:g} s")
    except ValueError as err:
        if _raised_by(err, ours) and str(err):
            return Outcome("rejected", str(err))
        return Outcome(
            "CRASH", f"ValueError from a library: {err} [{traceback.format_exception(err)[-2].strip()[:120]}]"
        )
    except Exception as err:  # noqa: BLE001 - that is what is being classified
        return Outcome("CRASH", f"{type(err).__name__}: {err}")
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    if not isinstance(est, Estimate):
        return Outcome("CRASH", f"returned {type(est).__name__}, not an Estimate")
    if est.ok:
        if isinstance(est.mi, (int, float)) and math.isfinite(est.mi):
            return Outcome("finite", f"{est.mi:.3g}")
        return Outcome("SILENT-NONFINITE", f"ok=True with mi={est.mi!r}")
    reason = str(est.info.get("error") or "")
    return Outcome("failed", reason) if reason else Outcome("CRASH", "failed Estimate without a reason")


def outcome(est: str | Estimator, x: Any, y: Any, timeout: float = 120.0) -> Outcome:
    """Classify `est.estimate(x, y)`; `est` a registered name (built by `make`) or an instance."""
    est = make(est) if isinstance(est, str) else est
    return classify(lambda: est.estimate(x, y), timeout, _own_dirs(type(est)))


# -- the fixed cases ----------------------------------------------------------------
@dataclasses.dataclass
class Case:
    key: str
    what: str
    build: Callable[[np.random.Generator, Estimator], tuple[Any, Any]]
    # Regex the ValueError must match if the input is invalid; None: a degenerate but valid
    # input, for which a documented finite value or a failed Estimate with a reason is expected.
    reject: str | None


def _xy(rng: np.random.Generator, n: int = 50, dx: int = 2, dy: int = 2) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((n, dx))
    y = 0.8 * x[:, :1] + 0.6 * rng.standard_normal((n, dy))
    return x, y


def _set(i: int, j: int, v: float) -> Callable[[np.ndarray], np.ndarray]:
    def f(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        a[i, j] = v
        return a

    return f


def _on(fx: Callable[[Any], Any] | None = None, fy: Callable[[Any], Any] | None = None, n: int = 50):
    """A builder: a correlated Gaussian pair of n rows with fx applied to x and fy to y."""

    def build(rng: np.random.Generator, est: Estimator) -> tuple[Any, Any]:
        x, y = _xy(rng, n)
        return (fx(x) if fx else x), (fy(y) if fy else y)

    return build


def _const_col(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[:, 1] = 3.0
    return x


def _dups(rng: np.random.Generator, est: Estimator) -> tuple[np.ndarray, np.ndarray]:
    x, y = _xy(rng, 10)
    return np.repeat(x, 5, 0), np.repeat(y, 5, 0)


CASES: list[Case] = [
    Case("nan", "NaN in x", _on(_set(7, 1, np.nan)), "NaN or inf"),
    Case("inf", "-inf in y", _on(fy=_set(3, 0, -np.inf)), "NaN or inf"),
    Case("empty", "empty arrays, shape (0, 2)", _on(n=0), "too few rows"),
    Case("empty_1d", "empty 1-D arrays, shape (0,)", lambda r, e: (np.array([]), np.array([])), "too few rows"),
    Case("n1", "n = 1", _on(n=1), "too few rows"),
    Case("below_min_n", "n = min_n - 1", lambda r, e: _xy(r, e.min_n - 1), "too few rows"),
    Case("ragged_n", "x has 50 rows, y 49", _on(fy=lambda y: y[:-1]), "same number of rows"),
    Case(
        "ragged_list",
        "nested list, rows of unequal length",
        _on(lambda x: x.tolist()[:-1] + [[1.0]]),
        "could not be read",
    ),
    Case("rank3", "3-D array (50, 2, 2)", _on(lambda x: np.stack([x, x], 2)), "rank 3"),
    Case("rank0", "a scalar (0-D)", _on(lambda x: np.float64(1.0)), "rank 0"),
    Case("object", "object dtype holding floats", _on(lambda x: x.astype(object)), "numeric dtype"),
    Case(
        "object_none",
        "object dtype with a None",
        _on(lambda x: np.where(np.arange(50)[:, None] == 4, None, x.astype(object))),
        "numeric dtype",
    ),
    Case("strings", "strings ('<U' dtype)", _on(lambda x: x.astype(str)), "numeric dtype"),
    Case("complex", "complex dtype", _on(lambda x: x + 1j), "real-valued"),
    Case("huge", "one value of 1e300", _on(_set(0, 0, 1e300)), "magnitude above"),
    Case("huge_all", "x scaled by 1e300", _on(lambda x: x * 1e300), "magnitude above"),
    Case("large_ok", "x scaled by 1e149 (inside the limit)", _on(lambda x: x * 1e149), None),
    Case("tiny_spread", "x scaled by 1e-200 (squares underflow)", _on(lambda x: x * 1e-200), "vary by less than"),
    Case("const_col", "one constant column in x", _on(_const_col), None),
    Case("const_x", "x entirely constant", _on(lambda x: np.full_like(x, 2.0)), None),
    Case("const_all", "x and y constant (all rows equal)", lambda r, e: (np.ones((50, 2)), np.ones((50, 2))), None),
    Case("dup_rows", "10 distinct rows, each 5 times", _dups, None),
    Case(
        "dup_rows_6", "8 distinct rows, each 6 times", lambda r, e: tuple(np.repeat(a, 6, 0) for a in _xy(r, 8)), None
    ),
    Case("bool", "bool dtype (read as 0/1)", _on(lambda x: x > 0, lambda y: y > 0), None),
    Case("min_n", "n = min_n (smallest accepted)", lambda r, e: _xy(r, e.min_n), None),
    Case("d0", "d = 0, shape (50, 0)", _on(lambda x: x[:, :0]), "no columns"),
]


def expected_ok(case: Case, out: Outcome) -> bool:
    """Whether `out` is an acceptable outcome for `case`."""
    if case.reject is not None:
        return out.kind == "rejected" and re.search(case.reject, out.detail) is not None
    return out.good


def run_case(est: str | Estimator, case: Case, seed: int = 0) -> Outcome:
    """The outcome of `case` for `est` (a registered name, built by `make`, or an instance)."""
    if isinstance(est, str):
        try:
            est = make(est)
        except Exception as err:  # noqa: BLE001
            return Outcome("n/a", f"cannot construct: {type(err).__name__}: {err}")
    x, y = case.build(np.random.default_rng(seed), est)
    return outcome(est, x, y)


# -- the conformance checks ------------------------------------------------------------
def correlated_data() -> tuple[np.ndarray, np.ndarray]:
    """300 rows of (x, y), 2 + 2 dimensions, equicorrelated (0.6) Gaussian: MI 0.413 nats."""
    rng = np.random.default_rng(0)
    z = rng.multivariate_normal(np.zeros(4), np.eye(4) * 0.4 + 0.6, size=300)
    return z[:, :2], z[:, 2:]


def gaussian_pair(n: int = 500, seed: int = 0, rho: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """Bivariate Gaussian with correlation rho (0.75: MI = 0.4133 nats), as columns (n, 1)."""
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=n)
    return z[:, :1], z[:, 1:]


@dataclasses.dataclass
class Subject:
    """What the checks run: the class, the parameters for the interface checks (cheap budgets)
    and for the accuracy check (the defaults, unless given)."""

    cls: type[Estimator]
    params: dict[str, Any]
    accuracy_params: dict[str, Any]
    instance: Estimator | None = None  # the one given to check_estimator, if any

    @property
    def label(self) -> str:
        return self.cls.name or self.cls.__name__

    def make(self, **over: Any) -> Estimator:
        return self.cls(**{**self.params, **over})

    @property
    def trained(self) -> bool:
        return is_trained(self.cls)


def check_params_from_signature(s: Subject) -> None:
    """The constructor's signature names the parameters; each is stored, read back by `get_params`
    in that order, shown by repr, and rebuilding from them gives the same parameters."""
    est = s.instance if s.instance is not None else s.make()
    names = s.cls.param_names()
    stored = set(est.params)
    assert stored <= set(names), (
        f"{s.label} stores parameters its constructor does not take: "
        f"{sorted(stored - set(names))} (signature: {list(names)})"
    )
    params = est.get_params()
    assert tuple(params) == names, (list(params), names)
    again = type(est)(**params).get_params()
    assert _same(again, params), f"{s.label}: rebuilding from get_params() gives {again}, not {params}"
    text = repr(est)
    assert text.startswith(type(est).__name__ + "(") and all(f"{k}=" in text for k in names), text


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - e.g. arrays as values
        return repr(a) == repr(b)


def check_output_type(s: Subject) -> None:
    est = s.make().estimate(*correlated_data())
    assert isinstance(est, Estimate), type(est)
    assert isinstance(est.mi, float) and np.isfinite(est.mi) and est.ok, est
    assert est.seconds >= 0 and isinstance(est.info, dict)
    if est.lower is not None:
        assert est.lower <= est.upper, est


def check_one_dimensional_input(s: Subject) -> None:
    x, y = gaussian_pair(200)
    est = s.make().estimate(x[:, 0], y[:, 0])
    assert np.isfinite(est.mi), est


def check_row_permutation_invariance(s: Subject) -> None:
    x, y = correlated_data()
    perm = np.random.default_rng(1).permutation(len(x))
    a = s.make().estimate(x, y).mi
    b = s.make().estimate(x[perm], y[perm]).mi
    if s.trained and "seed" in accepted_params(s.cls):
        # The held-out split and the minibatches follow the row order, as they follow the seed:
        # a permutation may move the estimate by as much as another seed does, no more.
        seeds = [s.make(seed=k).estimate(x, y).mi for k in range(1, 5)]
        assert abs(a - b) <= max(np.ptp(seeds + [a]), 0.01), (a, b, seeds)
    elif s.cls.amortised:
        assert abs(a - b) <= 1e-4, (a, b)  # set functions: float reassociation only
    else:
        assert abs(a - b) <= 1e-9, (a, b)


BAD_INPUT = {
    "nan": "NaN",
    "inf": "NaN or inf",
    "mismatched_n": "same number of rows",
    "too_few_rows": "too few rows",
    "wrong_rank": "rank 3",
}


def check_bad_input_raises_clear_value_error(s: Subject, cases: Iterable[str] = tuple(BAD_INPUT)) -> None:
    for case in cases:
        x, y = correlated_data()
        x = x.copy()
        if case == "nan":
            x[5, 0] = np.nan
        elif case == "inf":
            x[5, 0] = -np.inf
        elif case == "mismatched_n":
            y = y[:-1]
        elif case == "too_few_rows":
            x, y = x[:1], y[:1]
        elif case == "wrong_rank":
            x = x[:, :, None]
        try:
            s.make().estimate(x, y)
        except ValueError as err:
            assert re.search(BAD_INPUT[case], str(err)), f"{case}: unclear message {str(err)!r}"
        else:
            raise AssertionError(f"{case}: no ValueError")


def check_batch_matches_single(s: Subject) -> None:
    est = s.make()
    sets = [correlated_data(), gaussian_pair(150, seed=3)]
    batch = est.estimate_batch(sets)
    assert len(batch) == 2 and all(isinstance(b, Estimate) for b in batch), batch
    if s.cls.deterministic:
        single = [s.make().estimate(*d).mi for d in sets]
        # Per-dataset networks trained in a stack end as they would alone, up to float reassociation
        # (padded reductions), which training carries along: 1.6e-4 nats here, 0.0018 at most over
        # 64 datasets and 2,000 steps (devbench/neural_baselines_bench.py).
        tol = 1e-4 if s.cls.amortised else 2e-3 if s.trained else 1e-9
        assert all(abs(b.mi - m) <= tol for b, m in zip(batch, single)), ([b.mi for b in batch], single, tol)


def check_constant_variable_gives_exactly_zero(s: Subject) -> None:
    x, y = correlated_data()
    const = np.full_like(x, 3.5)
    est = s.make()
    single, both = est.estimate(const, y), est.estimate(x, np.zeros_like(y))
    assert single.mi == 0.0 and single.ok and "constant" in single.info["exact"], single
    assert both.mi == 0.0 and "y is constant" in both.info["exact"], both
    # In a batch, the constant dataset is answered apart and the others still run.
    batch = est.estimate_batch([(x, y), (const, y)])
    assert batch[1].mi == 0.0 and np.isfinite(batch[0].mi) and "exact" not in batch[0].info, batch


def check_a_misspelt_parameter_is_an_error(s: Subject) -> None:
    # Constructor arguments are the parameters: a typo in a config's params must not be ignored.
    try:
        s.cls(stpes=5)
    except TypeError as err:
        assert "stpes" in str(err), f"the TypeError does not name the parameter: {err}"
    else:
        raise AssertionError(f"{s.label}(stpes=5) raised no TypeError")


def check_a_constant_column_changes_nothing(s: Subject) -> None:
    # MI(X, c; Y) = MI(X; Y): the estimate must be the one without the column, through both entry points.
    x, y = correlated_data()
    with_const = np.hstack([x, np.full((len(x), 1), 3.0)])
    plain = s.make().estimate(x, y)
    est = s.make().estimate(with_const, y)
    assert est.mi == plain.mi and est.info["dropped_constant_columns"] == {"x": [2]}, (est, plain)
    assert s.make().estimate_batch([(with_const, y)])[0].mi == plain.mi


def check_dependence_scores_above_independence(s: Subject) -> None:
    # The weakest accuracy claim, which every estimator gets for free at its defaults (per-estimator
    # tests check analytic values): the dependent pair (MI 0.413 nats, n = 300) scores well above an
    # independent pair of the same shape, which scores near 0 (MINDE-C's upward small-sample bias is
    # ~0.1 nats there).
    x, y = correlated_data()
    indep = np.random.default_rng(7).standard_normal((len(x), 4))
    dep = s.cls(**s.accuracy_params).estimate(x, y).mi
    ind = s.cls(**s.accuracy_params).estimate(indep[:, :2], indep[:, 2:]).mi
    assert abs(ind) < 0.15 and dep - ind > 0.2, (dep, ind)


def check_bad_input_cases(s: Subject) -> None:
    """Every case of `CASES` ends as expected, with the cheaper budgets of `params_for`."""
    acc = accepted_params(s.cls)
    budget = {k: v for k, v in CHEAP.items() if k in acc and k not in s.params}
    if s.trained:
        budget.update({k: v for k, v in TRAINED_BUDGET.items() if k in acc})
    est = s.make(**budget)
    bad = []
    for case in CASES:
        out = run_case(est, case)
        if not expected_ok(case, out):
            bad.append(f"{case.key} ({case.what}): {out.cell(300)}")
    assert not bad, "unexpected outcomes:\n  " + "\n  ".join(bad)


CHECKS: dict[str, Callable[[Subject], None]] = {
    "params_from_signature": check_params_from_signature,
    "output_type": check_output_type,
    "one_dimensional_input": check_one_dimensional_input,
    "row_permutation_invariance": check_row_permutation_invariance,
    "bad_input_raises_clear_value_error": check_bad_input_raises_clear_value_error,
    "batch_matches_single": check_batch_matches_single,
    "constant_variable_gives_exactly_zero": check_constant_variable_gives_exactly_zero,
    "a_misspelt_parameter_is_an_error": check_a_misspelt_parameter_is_an_error,
    "a_constant_column_changes_nothing": check_a_constant_column_changes_nothing,
    "dependence_scores_above_independence": check_dependence_scores_above_independence,
    "bad_input_cases": check_bad_input_cases,
}


def check_estimator(
    estimator_or_name: str | type[Estimator] | Estimator,
    *,
    params: Mapping[str, Any] | None = None,
    checks: Sequence[str] | None = None,
    skip: Iterable[str] = (),
    on_fail: str | None = "raise",
) -> dict[str, str | None]:
    """Run the conformance checks on an estimator.

    estimator_or_name: a registered name or an `Estimator` subclass (the interface checks then use
    the class's `test_params` updated with `params`, the accuracy check `params` alone, i.e. the
    defaults), or an instance (every check uses its `get_params()`);
    checks: names from `CHECKS` (default: all), minus `skip`;
    on_fail: "raise" raises `AssertionError` naming every failed check (after running them all),
    None returns the results only.

    Returns {check: None if it passed, else "ExceptionType: message"}.
    """
    if on_fail not in ("raise", None):
        raise ValueError(f"on_fail must be 'raise' or None, got {on_fail!r}")
    cls = _as_class(estimator_or_name)
    if isinstance(estimator_or_name, Estimator):
        if params:
            raise ValueError("params are for a name or a class; an instance brings its own")
        try:
            own = estimator_or_name.get_params()
        except AttributeError:  # reported by params_from_signature
            own = dict(estimator_or_name.params)
        subject = Subject(cls, dict(own), dict(own), estimator_or_name)
    else:
        subject = Subject(cls, {**cls.test_params, **(params or {})}, dict(params or {}))
    names = list(CHECKS) if checks is None else list(checks)
    unknown = sorted(set(names) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown checks {unknown}; known: {', '.join(CHECKS)}")
    skip = set(skip)
    results: dict[str, str | None] = {}
    errors: dict[str, BaseException] = {}
    for name in names:
        if name in skip:
            continue
        try:
            CHECKS[name](subject)
            results[name] = None
        except Exception as err:  # noqa: BLE001 - every failure is reported, with its check's name
            results[name] = f"{type(err).__name__}: {err}"
            errors[name] = err
    if errors and on_fail == "raise":
        lines = [f"{name}: {results[name]}" for name in errors]
        msg = f"{subject.label}: {len(errors)} of {len(results)} conformance checks failed:\n  " + "\n  ".join(lines)
        raise AssertionError(msg) from next(iter(errors.values()))
    return results
