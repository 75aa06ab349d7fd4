"""The adapter interface, validation and registry."""
import numpy as np
import pytest

import estimators
from estimators.base import Estimate, Estimator
from estimators.registry import register


def test_public_api_names():
    assert {"ksg", "gaussian"} <= set(estimators.available())
    assert isinstance(estimators.get("ksg"), estimators.Estimator)


def test_unknown_estimator_lists_known():
    with pytest.raises(ValueError, match="unknown estimator 'nope'.*ksg"):
        estimators.get("nope")


def test_from_config_entry():
    est = estimators.from_config({"estimator": "ksg", "params": {"k": 3}})
    assert est.k == 3
    with pytest.raises(ValueError, match="no 'estimator' key"):
        estimators.from_config({"params": {}})
    with pytest.raises(ValueError, match="must be a mapping"):
        estimators.from_config({"estimator": "ksg", "params": [1]})


def test_bad_parameter_is_clear():
    with pytest.raises(ValueError, match="k must be >= 1"):
        estimators.get("ksg", k=0)
    with pytest.raises(TypeError):
        estimators.get("ksg", nonsense=1)


def test_duplicate_registration_rejected():
    class A(Estimator):
        name = "ksg"

    with pytest.raises(TypeError, match="registered twice"):
        register(A)


@pytest.mark.parametrize("x, y, msg", [
    (np.full((20, 1), np.nan), np.zeros((20, 1)), "NaN or inf"),
    (np.ones((20, 1)) * np.inf, np.zeros((20, 1)), "NaN or inf"),
    (np.zeros((20, 1)), np.zeros((19, 1)), "same number of rows"),
    (np.zeros((20, 1, 1)), np.zeros((20, 1)), "rank 3"),
    (np.zeros((20, 0)), np.zeros((20, 1)), "no columns"),
    (np.array([["a"]] * 20, dtype=object), np.zeros((20, 1)), "numeric dtype"),
    (np.full((20, 1), 1e300), np.zeros((20, 1)), "magnitude"),
    ("abc", np.zeros((20, 1)), "numeric array"),
    (np.zeros((2, 1)), np.zeros((2, 1)), "too few rows"),
])
def test_validation_messages(x, y, msg):
    with pytest.raises(ValueError, match=msg):
        estimators.get("ksg").estimate(x, y)


def test_one_dimensional_input_is_one_column(gaussian_pair):
    x, y = gaussian_pair(300)
    a = estimators.get("ksg").estimate(x[:, 0], y[:, 0]).mi
    b = estimators.get("ksg").estimate(x, y).mi
    assert a == b


def test_estimate_carries_time_and_name(gaussian_pair):
    est = estimators.get("ksg").estimate(*gaussian_pair(200))
    assert isinstance(est, Estimate) and est.ok
    assert est.seconds > 0 and est.info["estimator"] == "ksg"


def test_batch_names_the_bad_dataset(gaussian_pair):
    x, y = gaussian_pair(100)
    bad = x.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="dataset 1: x contains NaN"):
        estimators.get("ksg").estimate_batch([(x, y), (bad, y)])


def test_failed_estimate_is_not_finite():
    e = Estimate.failed("diverged")
    assert not e.ok and np.isnan(e.mi) and e.info["error"] == "diverged"
