"""Property-based bad input to `estimate(x, y)`, across every registered estimator.

Each input must end in a clear `ValueError` (raised by our code, naming the problem),
a finite `ok` estimate, or a failed `Estimate` with a reason. Anything else (another
exception, a `ValueError` leaking out of a library, NaN/inf reported as ok, a hang) is a
bug. The classifier and the fixed cases live in `estimators.testing` (public: `check_estimator`
runs the fixed cases too); `python -m devbench.bad_input_table` prints them as a Markdown table.

Budgets: hypothesis runs few examples (derandomised, no database) and per-dataset-trained
estimators get a tiny training budget and fewer examples, so the file stays within about
two minutes on two shared cores. `HYPOTHESIS_PROFILE=explore` runs more, random examples
(`BAD_INPUT_EXAMPLES`, default 200, per property).
"""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import estimators
from estimators import testing as bit
from estimators.validation import MAX_ABS, MIN_SPREAD

NAMES = estimators.available()

# Local settings (no global hypothesis profile is loaded, so other test files are unaffected).
BASE = settings(
    deadline=None, derandomize=True, database=None, print_blob=True, suppress_health_check=list(HealthCheck)
)
# HYPOTHESIS_PROFILE=explore: random examples, BAD_INPUT_EXAMPLES (default 200) per property.
EXPLORE = os.environ.get("HYPOTHESIS_PROFILE") == "explore"

# Examples per property: validation rejects before any work, so those are cheap everywhere;
# degenerate-but-valid input makes trained estimators train.
REJECT_EXAMPLES = 12
ANSWER_EXAMPLES = {"fast": 12, "amortised": 5, "trained": 3}


def _est(name: str) -> estimators.Estimator:
    try:
        return bit.make(name)
    except Exception as err:  # noqa: BLE001 - e.g. missing or corrupt shipped weights: a failure, not a skip
        pytest.fail(f"{name} cannot be constructed with its test_params: {type(err).__name__}: {err}")


def _examples(name: str, answer: bool) -> int:
    if EXPLORE:
        return int(os.environ.get("BAD_INPUT_EXAMPLES", 200))
    if not answer:
        return REJECT_EXAMPLES
    if bit.is_trained(name):
        return ANSWER_EXAMPLES["trained"]
    return ANSWER_EXAMPLES["amortised" if _est(name).amortised else "fast"]


def _check(name, build, reject, answer, answers=("finite", "failed")):
    """Run a property: `build(data)` -> (x, y); `reject`: regex the ValueError must match;
    otherwise the outcome must be one of `answers` (a finite estimate, or a failed Estimate with
    its reason): a ValueError on valid input is a failure."""
    est = _est(name)

    @settings(BASE, max_examples=_examples(name, answer), derandomize=not EXPLORE)
    @given(st.data())
    def prop(data):
        x, y = build(data, est)
        out = bit.outcome(name, x, y, timeout=120)
        if reject is not None:
            assert out.kind == "rejected", f"{name}: expected a ValueError matching {reject!r}, got {out.cell(400)}"
            assert re.search(reject, out.detail), f"{name}: unclear message {out.detail!r}"
        else:
            assert out.kind in answers, f"{name}: expected one of {answers}, got {out.cell(400)}"

    prop()


def _pair(data, n, dx=None, dy=None):
    dx = dx if dx is not None else data.draw(st.integers(1, 4), label="dx")
    dy = dy if dy is not None else data.draw(st.integers(1, 4), label="dy")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dx))
    y = 0.7 * x[:, :1] + rng.standard_normal((n, dy))
    if data.draw(st.booleans(), label="1-D") and dx == 1 and dy == 1:
        return x[:, 0], y[:, 0]
    return x, y


def _n(data, est, lo=0, hi=60):
    return data.draw(st.integers(max(lo, est.min_n), max(hi, est.min_n + 1)), label="n")


@pytest.mark.parametrize("name", NAMES)
def test_nan_or_inf_anywhere_is_rejected(name):
    def build(data, est):
        x, y = _pair(data, _n(data, est))
        x, y = np.atleast_1d(x).copy(), np.atleast_1d(y).copy()
        a = x if data.draw(st.booleans(), label="in x") else y
        flat = a.reshape(-1)
        flat[data.draw(st.integers(0, flat.size - 1), label="where")] = data.draw(
            st.sampled_from([np.nan, np.inf, -np.inf]), label="value"
        )
        return x, y

    _check(name, build, r"contains NaN or inf \(first at row \d+, column \d+\)", answer=False)


@pytest.mark.parametrize("name", NAMES)
def test_empty_and_too_few_rows_are_rejected(name):
    def build(data, est):
        n = data.draw(st.integers(0, est.min_n - 1), label="n")  # includes n = 0 and n = 1
        shape = data.draw(st.sampled_from(["1-D", "2-D"]), label="shape")
        d = data.draw(st.integers(1, 3), label="d")
        x = np.zeros(n) if shape == "1-D" else np.ones((n, d))
        return x, np.arange(float(n)) if shape == "1-D" else np.ones((n, d))

    _check(name, build, r"too few rows: n = \d+, this estimator needs at least \d+", answer=False)


@pytest.mark.parametrize("name", NAMES)
def test_ragged_n_is_rejected(name):
    def build(data, est):
        n = _n(data, est, hi=40)
        x, y = _pair(data, n)
        m = data.draw(st.integers(0, 60).filter(lambda m: m != n), label="n_y")
        y = np.resize(y, (m,) + np.shape(y)[1:])
        return (x, y) if data.draw(st.booleans(), label="swap") else (y, x)

    _check(name, build, r"same number of rows|too few rows", answer=False)


@pytest.mark.parametrize("name", NAMES)
def test_ragged_nested_lists_are_rejected(name):
    def build(data, est):
        x, y = _pair(data, _n(data, est, lo=2, hi=30), dx=2)
        rows = x.tolist()
        i = data.draw(st.integers(0, len(rows) - 1), label="row")
        rows[i] = rows[i][:1] if data.draw(st.booleans(), label="shorter") else rows[i] + [0.0]
        return rows, y

    _check(name, build, r"could not be read as an array", answer=False)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_rank_is_rejected(name):
    def build(data, est):
        n = _n(data, est, hi=30)
        x, y = _pair(data, n, dx=2)
        rank = data.draw(st.sampled_from([0, 3, 4]), label="rank")
        bad = np.float64(1.5) if rank == 0 else np.asarray(x).reshape((n, 2) + (1,) * (rank - 2))
        return (bad, y) if data.draw(st.booleans(), label="in x") else (x, bad)

    _check(name, build, r"must be 1-D or 2-D \(n, d\), got an array of rank [034]", answer=False)


@pytest.mark.parametrize("name", NAMES)
def test_non_numeric_dtypes_are_rejected(name):
    def build(data, est):
        x, y = _pair(data, _n(data, est, hi=30))
        kind = data.draw(
            st.sampled_from(["object", "object_none", "str", "bytes", "complex", "datetime"]), label="dtype"
        )
        x = np.asarray(x)
        bad = {
            "object": lambda: x.astype(object),
            "object_none": lambda: np.full(x.shape, None),
            "str": lambda: x.astype(str),
            "bytes": lambda: x.astype("S8"),
            "complex": lambda: x + 0.5j,
            "datetime": lambda: (x * 1000).astype("int64").astype("datetime64[s]"),
        }[kind]()
        return bad, y

    _check(name, build, r"must have a numeric dtype|must be real-valued|could not be read", answer=False)


@pytest.mark.parametrize("name", NAMES)
def test_huge_values_are_rejected(name):
    def build(data, est):
        x, y = _pair(data, _n(data, est, hi=30))
        x = np.atleast_2d(np.asarray(x).T).T.copy()
        mag = data.draw(st.floats(min_value=MAX_ABS * 1.0001, max_value=1.7e308), label="magnitude")
        if data.draw(st.booleans(), label="whole column"):
            x[:, 0] = x[:, 0] / np.abs(x[:, 0]).max() * mag
        else:
            x[data.draw(st.integers(0, x.shape[0] - 1), label="row"), 0] = mag
        return x, y

    _check(name, build, r"magnitude above 1e\+150", answer=False)


@pytest.mark.parametrize("name", NAMES)
def test_tiny_spread_is_rejected(name):
    # A column varying by less than MIN_SPREAD used to come out of std() as 0 and be
    # silently treated as constant (KSG, MINE: MI 0) or crash sklearn's CCA.
    def build(data, est):
        x, y = _pair(data, _n(data, est, lo=2, hi=30))
        scale = 10.0 ** data.draw(st.floats(-320, math.log10(MIN_SPREAD) - 1), label="log10 scale")
        x = np.atleast_2d(np.asarray(x).T).T * scale
        x[:, 0] += 1e-200 * np.arange(len(x))  # in case the scale flushed the column to 0 (constant)
        return x, y

    _check(name, build, r"vary by less than 1e-150", answer=False)


@pytest.mark.parametrize("name", NAMES)
def test_zero_columns_are_rejected(name):
    def build(data, est):
        n = _n(data, est, hi=30)
        x, y = _pair(data, n, dx=2, dy=2)
        which = data.draw(st.sampled_from(["x", "y", "both"]), label="which")
        return (x[:, :0] if which != "y" else x), (y[:, :0] if which != "x" else y)

    _check(name, build, r"has no columns \(d = 0\)", answer=False)


# -- degenerate but valid input: a documented finite answer or a failed Estimate ----
@pytest.mark.parametrize("name", NAMES)
def test_large_values_inside_the_limit_give_an_answer(name):
    def build(data, est):
        x, y = _pair(data, _n(data, est, lo=20, hi=40))
        return np.asarray(x) * 10.0 ** data.draw(st.floats(100, 149), label="log10 scale"), y

    _check(name, build, None, answer=True)


@pytest.mark.parametrize("name", NAMES)
def test_constant_columns_give_an_answer(name):
    def build(data, est):
        x, y = _pair(data, _n(data, est, lo=20, hi=40), dx=data.draw(st.integers(1, 3)))
        x = np.atleast_2d(np.asarray(x).T).T.copy()
        cols = data.draw(st.lists(st.integers(0, x.shape[1] - 1), min_size=1, unique=True), label="cols")
        x[:, cols] = data.draw(st.floats(-1e6, 1e6), label="value")
        return x, y

    # Constant columns are dropped in the base class (MI is unchanged), all of x constant is MI 0.
    _check(name, build, None, answer=True, answers=("finite",))


@pytest.mark.parametrize("name", NAMES)
def test_duplicated_rows_give_an_answer(name):
    def build(data, est):
        distinct = data.draw(st.integers(1, 12), label="distinct rows")
        x, y = _pair(data, distinct)
        reps = data.draw(st.integers(2, 8), label="copies")
        x, y = np.repeat(x, reps, 0), np.repeat(y, reps, 0)
        if len(x) < est.min_n:
            x, y = np.resize(x, (est.min_n,) + x.shape[1:]), np.resize(y, (est.min_n,) + y.shape[1:])
        perm = np.random.default_rng(data.draw(st.integers(0, 99))).permutation(len(x))
        return x[perm], y[perm]

    _check(name, build, None, answer=True)


@pytest.mark.parametrize("name", NAMES)
def test_smallest_accepted_n_gives_an_answer(name):
    def build(data, est):
        return _pair(data, est.min_n + data.draw(st.integers(0, 2), label="extra rows"))

    _check(name, build, None, answer=True)


# -- the batched call names the bad dataset ------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_batch_names_the_bad_dataset(name):
    est = _est(name)
    rng = np.random.default_rng(0)
    good = (rng.standard_normal((40, 2)), rng.standard_normal((40, 2)))
    bad = (good[0].copy(), good[1])
    bad[0][3, 1] = np.nan
    with pytest.raises(ValueError, match=r"dataset 1: x contains NaN or inf"):
        est.estimate_batch([good, bad, good])


# -- the fixed table of cases, each with its expected kind of outcome ----------------
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", bit.CASES, ids=[c.key for c in bit.CASES])
def test_table_case(name, case):
    if case.reject is None and bit.is_trained(name) and case.key not in ("const_all", "dup_rows_6", "min_n"):
        pytest.skip("covered by the property tests above (keeps the trained estimators' budget small)")
    _est(name)
    out = bit.run_case(name, case)
    assert bit.expected_ok(case, out), f"{case.what} × {name}: {out.cell(400)}"
