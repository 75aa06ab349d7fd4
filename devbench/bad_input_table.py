"""Bad input to the public API, across the whole registry: what each estimator does.

    python -m devbench.bad_input_table            # Markdown table on stdout
    python -m devbench.bad_input_table --only ksg gaussian

Each case feeds `estimate(x, y)` one kind of bad or degenerate input. The outcome is
classified as one of:

- `rejected`: a `ValueError` raised by our own code (validation or the estimator), whose
  message names the problem;
- `finite`: an `ok` estimate with a finite value (the documented answer for degenerate
  but valid input: constant columns, duplicated rows, large values, the smallest n);
- `failed`: an `Estimate` with `ok=False` and a reason in `info["error"]`;

and, all of them bugs:

- `CRASH`: any other exception, or a `ValueError` raised inside a third-party library
  (its message is not ours and does not name the input's problem);
- `SILENT-NONFINITE`: an `ok` estimate whose value is NaN or inf;
- `HANG`: no answer within the time limit.

`tests/test_bad_input.py` uses the same classifier in property-based tests.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import os
import signal
import traceback
import warnings
from functools import lru_cache
from typing import Any, Callable

import numpy as np

import estimators
from estimators.registry import _REGISTRY

# Smaller budgets still for the per-dataset-trained estimators (any that take `steps`):
# these checks are about robustness, not accuracy. Applied on top of the class's test_params.
TRAINED_BUDGET = {"steps": 20, "eval_every": 10, "patience": 1, "batch": 16, "mc_passes": 1,
                  "group_size": 4}
# Cost knobs of any estimator that takes them (InfoNet's random projections).
CHEAP = {"n_projections": 16}
_OURS = tuple(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), p) + os.sep
              for p in ("estimators", "benchmarks"))
GOOD = ("rejected", "finite", "failed")


def accepted_params(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            names |= {p.name for p in inspect.signature(klass.__init__).parameters.values()
                      if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return names


def is_trained(name: str) -> bool:
    """Per-dataset-trained: takes a training budget (`steps`)."""
    return "steps" in accepted_params(_REGISTRY[name])


def params_for(name: str) -> dict[str, Any]:
    cls = _REGISTRY[name]
    p = dict(cls.test_params)
    acc = accepted_params(cls)
    p.update({k: v for k, v in CHEAP.items() if k in acc and k not in p})
    if is_trained(name):
        p.update({k: v for k, v in TRAINED_BUDGET.items() if k in acc})
    return p


@lru_cache(maxsize=None)
def make(name: str) -> estimators.Estimator:
    estimators.available()
    return estimators.get(name, **params_for(name))


@dataclasses.dataclass
class Outcome:
    kind: str      # rejected | finite | failed | CRASH | SILENT-NONFINITE | HANG
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


def _raised_by_us(err: BaseException) -> bool:
    tb = err.__traceback__
    last = None
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return last is not None and os.path.abspath(last).startswith(_OURS)


def classify(call: Callable[[], Any], timeout: float = 120.0) -> Outcome:
    """Run `call()` (an estimate) and classify what happened."""
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
        if _raised_by_us(err) and str(err):
            return Outcome("rejected", str(err))
        return Outcome("CRASH", f"ValueError from a library: {err} "
                                f"[{traceback.format_exception(err)[-2].strip()[:120]}]")
    except Exception as err:  # noqa: BLE001 - that is what is being classified
        return Outcome("CRASH", f"{type(err).__name__}: {err}")
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    if not isinstance(est, estimators.Estimate):
        return Outcome("CRASH", f"returned {type(est).__name__}, not an Estimate")
    if est.ok:
        if isinstance(est.mi, (int, float)) and math.isfinite(est.mi):
            return Outcome("finite", f"{est.mi:.3g}")
        return Outcome("SILENT-NONFINITE", f"ok=True with mi={est.mi!r}")
    reason = str(est.info.get("error") or "")
    return Outcome("failed", reason) if reason else Outcome("CRASH", "failed Estimate without a reason")


def outcome(name: str, x: Any, y: Any, timeout: float = 120.0) -> Outcome:
    return classify(lambda: make(name).estimate(x, y), timeout)


# -- the cases ------------------------------------------------------------------
@dataclasses.dataclass
class Case:
    key: str
    what: str
    build: Callable[[np.random.Generator, estimators.Estimator], tuple[Any, Any]]
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
    def build(rng: np.random.Generator, est: estimators.Estimator) -> tuple[Any, Any]:
        x, y = _xy(rng, n)
        return (fx(x) if fx else x), (fy(y) if fy else y)
    return build


def _const_col(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[:, 1] = 3.0
    return x


def _dups(rng: np.random.Generator, est: estimators.Estimator) -> tuple[np.ndarray, np.ndarray]:
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
    Case("ragged_list", "nested list, rows of unequal length",
         _on(lambda x: x.tolist()[:-1] + [[1.0]]), "could not be read"),
    Case("rank3", "3-D array (50, 2, 2)", _on(lambda x: np.stack([x, x], 2)), "rank 3"),
    Case("rank0", "a scalar (0-D)", _on(lambda x: np.float64(1.0)), "rank 0"),
    Case("object", "object dtype holding floats", _on(lambda x: x.astype(object)), "numeric dtype"),
    Case("object_none", "object dtype with a None", _on(lambda x: np.where(np.arange(50)[:, None] == 4, None,
                                                                           x.astype(object))), "numeric dtype"),
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
    Case("dup_rows_6", "8 distinct rows, each 6 times", lambda r, e: tuple(np.repeat(a, 6, 0) for a in _xy(r, 8)),
         None),
    Case("bool", "bool dtype (read as 0/1)", _on(lambda x: x > 0, lambda y: y > 0), None),
    Case("min_n", "n = min_n (smallest accepted)", lambda r, e: _xy(r, e.min_n), None),
    Case("d0", "d = 0, shape (50, 0)", _on(lambda x: x[:, :0]), "no columns"),
]


def expected_ok(case: Case, out: Outcome) -> bool:
    """Whether `out` is an acceptable outcome for `case`."""
    import re

    if case.reject is not None:
        return out.kind == "rejected" and re.search(case.reject, out.detail) is not None
    return out.good


def run_case(name: str, case: Case, seed: int = 0) -> Outcome:
    try:
        est = make(name)
    except Exception as err:  # noqa: BLE001
        return Outcome("n/a", f"cannot construct: {type(err).__name__}: {err}")
    x, y = case.build(np.random.default_rng(seed), est)
    return outcome(name, x, y)


def _short(out: Outcome) -> str:
    if out.kind == "rejected":
        return "ValueError"
    if out.kind == "finite":
        return out.detail
    return out.kind


def table(names: list[str]) -> str:
    """Markdown: one row per input, one column per estimator, then the messages."""
    head = "| input | expected | " + " | ".join(names) + " |"
    lines = [head, "|" + "---|" * (len(names) + 2)]
    bad, notes = [], []
    for case in CASES:
        cells, messages = [], {}
        for name in names:
            out = run_case(name, case)
            ok = out.kind == "n/a" or expected_ok(case, out)
            if not ok:
                bad.append(f"{case.key} × {name}: {out.cell(300)}")
            if out.kind in ("rejected", "failed", "n/a") or not ok:
                messages.setdefault(out.cell(200), []).append(name)
            cells.append(_short(out) if ok else f"**{out.kind}**")
        expected = f"ValueError /{case.reject}/" if case.reject else "finite, or failed + reason"
        lines.append(f"| {case.what} | {expected} | " + " | ".join(cells) + " |")
        for msg, who in messages.items():
            who_s = "all" if len(who) == len(names) else ", ".join(who)
            notes.append(f"- {case.what} ({who_s}): {msg}")
    lines += ["", "finite = an ok estimate (value in nats); failed = an Estimate with ok=False and a reason; "
              "ValueError = raised by our validation, message below.", "",
              f"{len(CASES)} inputs × {len(names)} estimators; unexpected outcomes: {len(bad)}"]
    lines += [f"- UNEXPECTED {b}" for b in bad]
    lines += ["", "Messages:"] + notes
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="estimator names (default: the whole registry)")
    args = ap.parse_args(argv)
    names = args.only or estimators.available()
    print(table(names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
