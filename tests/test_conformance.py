"""One suite for every registered estimator: new ones are covered for free.

The checks are the public ones of `estimators.testing.check_estimator`, run here one test per
(estimator, check). Each estimator runs with its class's `test_params` (small budgets) so that
the suite stays fast; the checks are about the interface, not accuracy. The fixed bad-input
cases (`bad_input_cases`) run in tests/test_bad_input.py, case by case.
"""

import math

import numpy as np
import pytest

import estimators
from estimators.base import Estimate, Estimator
from estimators.testing import CHECKS, check_estimator

NAMES = estimators.available()
HERE = [c for c in CHECKS if c != "bad_input_cases"]  # those run in tests/test_bad_input.py


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("check", HERE)
def test_conformance(name, check):
    cls = estimators.registry.estimator_class(name)
    if check == "dependence_scores_above_independence" and getattr(cls, "requires_weights", False):
        # The accuracy check runs at the defaults, and there are no default weights; the interface
        # checks run on test weights (tests/conftest.py), accuracy in tests/test_mist_paper.py.
        pytest.skip(f"{name} has no shipped weights: no accuracy at its defaults")
    check_estimator(name, checks=[check])


# -- check_estimator itself -------------------------------------------------------------
class _Gauss(Estimator):
    """MI of the Gaussian with the data's correlation matrix (ridge added to its diagonal)."""

    name = "gauss_test_only"

    def __init__(self, ridge: float = 0.0) -> None:
        if not ridge >= 0:
            raise ValueError(f"ridge must be >= 0, got {ridge}")
        super().__init__(ridge=float(ridge))

    def _estimate(self, x, y):
        c = np.corrcoef(np.hstack([x, y]), rowvar=False) + self.params["ridge"] * np.eye(x.shape[1] + y.shape[1])
        logdet = lambda a: np.linalg.slogdet(a)[1]  # noqa: E731
        dx = x.shape[1]
        return Estimate(mi=0.5 * (logdet(c[:dx, :dx]) + logdet(c[dx:, dx:]) - logdet(c)))


def test_check_estimator_passes_an_unregistered_class_and_an_instance():
    assert set(check_estimator(_Gauss)) == set(CHECKS)
    assert all(v is None for v in check_estimator(_Gauss(ridge=0.1)).values())


def test_check_estimator_names_the_failed_checks():
    class Sloppy(_Gauss):
        name = "sloppy_test_only"

        def __init__(self, **params):  # swallows typos, and stores what the signature does not name
            super().__init__()
            self.params.update(params)

    with pytest.raises(
        AssertionError,
        match=r"2 of 2 conformance checks failed:\n"
        r"  a_misspelt_parameter_is_an_error: .*no TypeError\n"
        r"  params_from_signature: .*\['stpes'\]",
    ):
        check_estimator(Sloppy(stpes=3), checks=["a_misspelt_parameter_is_an_error", "params_from_signature"])
    out = check_estimator(Sloppy, checks=["output_type", "a_misspelt_parameter_is_an_error"], on_fail=None)
    assert out["output_type"] is None and "no TypeError" in out["a_misspelt_parameter_is_an_error"]
    with pytest.raises(ValueError, match="unknown checks"):
        check_estimator("ksg", checks=["nope"])


def test_parameters_come_from_the_constructor_signature():
    ksg = estimators.get("ksg", k=3.0)
    assert list(ksg.get_params()) == ["k", "metric", "standardize", "clip", "n_bootstrap", "level", "seed"]
    assert ksg.get_params()["k"] == 3 and ksg.params == ksg.get_params()  # as stored: normalised
    assert repr(ksg).startswith("KSG(k=3, metric='euclidean'")
    # `**kw` forwarded to the parent constructor: the parent's names follow the class's own.
    mine = estimators.registry.estimator_class("mine")
    assert mine.param_names()[:2] == ("alpha", "hidden") and "device" in mine.param_names()

    class NoInit(Estimator):  # a class without a constructor of its own takes no parameters
        name = "noinit_test_only"

    assert NoInit().get_params() == {}
    with pytest.raises(TypeError, match=r"takes no parameters .*\['k'\]"):
        NoInit(k=3)


class _Fails(Estimator):
    """Raises, as a method may on valid input, for n = 13; a bug (KeyError) for n = 17."""

    name = "fails_test_only"

    def _estimate(self, x, y):
        if len(x) == 13:
            raise np.linalg.LinAlgError("singular matrix")
        if len(x) == 17:
            raise KeyError("a bug")
        return Estimate(mi=0.1)


def test_a_method_failure_is_a_failed_estimate_through_both_entry_points():
    rng = np.random.default_rng(0)
    ok, failing, buggy = ((rng.standard_normal((n, 1)), rng.standard_normal((n, 1))) for n in (20, 13, 17))
    est = _Fails()
    single = est.estimate(*failing)
    batch = est.estimate_batch([ok, failing])
    for e in (single, batch[1]):
        assert not e.ok and math.isnan(e.mi) and e.info["error"] == "LinAlgError: singular matrix"
    assert batch[0].ok and batch[0].mi == 0.1
    # Invalid input raises, through both; a bug (not a method failure) propagates, through both.
    bad = (np.full((20, 1), np.nan), ok[1])
    with pytest.raises(ValueError, match="NaN"):
        est.estimate(*bad)
    with pytest.raises(ValueError, match="dataset 1: x contains NaN"):
        est.estimate_batch([ok, bad])
    with pytest.raises(KeyError):
        est.estimate(*buggy)
    with pytest.raises(KeyError):
        est.estimate_batch([ok, buggy])


def test_the_batch_path_is_one_class_attribute():
    cls = estimators.registry.estimator_class
    assert not cls("ksg").has_batch_path and not cls("gaussian").has_batch_path
    assert all(cls(n).has_batch_path for n in ("mist", "mist_qr", "infonet", "mine", "infonce", "minde_c"))
    # amortised (a pretrained network) implies a batch path; per-dataset training has one too
    assert all(cls(n).has_batch_path for n in NAMES if cls(n).amortised)

    class Declared(_Fails):
        name = "declared_test_only"
        has_batch_path = True

    class Below(Declared):
        name = "below_test_only"

    class Overrides(_Fails):
        name = "overrides_test_only"

        def _estimate_batch(self, datasets):
            return super()._estimate_batch(datasets)

    assert Declared.has_batch_path and Below.has_batch_path and Overrides.has_batch_path
    assert not _Fails.has_batch_path
