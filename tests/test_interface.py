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


@pytest.mark.parametrize(
    "x, y, msg",
    [
        (np.full((20, 1), np.nan), np.zeros((20, 1)), "NaN or inf"),
        (np.ones((20, 1)) * np.inf, np.zeros((20, 1)), "NaN or inf"),
        (np.zeros((20, 1)), np.zeros((19, 1)), "same number of rows"),
        (np.zeros((20, 1, 1)), np.zeros((20, 1)), "rank 3"),
        (np.zeros((20, 0)), np.zeros((20, 1)), "no columns"),
        (np.array([["a"]] * 20, dtype=object), np.zeros((20, 1)), "numeric dtype"),
        (np.full((20, 1), 1e300), np.zeros((20, 1)), "magnitude"),
        ("abc", np.zeros((20, 1)), "numeric array"),
        (np.zeros((2, 1)), np.zeros((2, 1)), "too few rows"),
    ],
)
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


TORCH_ESTIMATORS = ("mist", "mist_qr", "infonet", "mine", "infonce", "minde_c", "minde_j")


def test_device_is_an_explicit_parameter_and_no_environment_variable_sets_it(monkeypatch, gaussian_pair):
    """MIST_DEVICE in the shell once forced the device of every torch estimator; nothing reads it
    now. cuda:7 would be an error here (no such GPU, or no CUDA at all) if it were read."""
    import inspect

    import torch

    from estimators.device import resolve_device
    from estimators.infonet.training import train as train_infonet
    from estimators.mist.training import train as train_mist

    monkeypatch.setenv("MIST_DEVICE", "cuda:7")
    auto = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device() == resolve_device("auto") == auto
    assert resolve_device("cpu") == torch.device("cpu")
    for train in (train_mist, train_infonet):  # the trainers take it as an argument too
        assert inspect.signature(train).parameters["device"].default == "auto"
    x, y = gaussian_pair(60)
    for name in TORCH_ESTIMATORS:
        cls = estimators.registry.estimator_class(name)
        assert estimators.get(name, **cls.test_params).params["device"] == "auto", name
        est = estimators.get(name, device="cpu", **cls.test_params)
        assert est.params["device"] == "cpu", name
    for name in ("mist", "infonet"):
        est = estimators.get(name)
        assert est.device == auto and est.estimate(x, y).ok
        assert estimators.get(name, device="cpu").device == torch.device("cpu")
    mine = estimators.get("mine", device="cpu", steps=20, eval_every=10)
    assert mine.estimate(x, y).ok
