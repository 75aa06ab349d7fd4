"""Units (nats / bits) and pandas DataFrames in the estimator API and the CLI (issue 26)."""

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import estimators
from estimators.base import Estimate
from estimators.validation import column_names

LN2 = math.log(2.0)


@pytest.fixture
def pair(gaussian_pair):
    return gaussian_pair(n=200, seed=1)


def _close(a, b):
    return a == pytest.approx(b, rel=1e-12, abs=1e-15)


def test_bits_are_nats_over_ln2_with_interval_and_quantiles(pair):
    ksg = estimators.get("ksg", k=3, n_bootstrap=10, seed=0)
    nats, bits = ksg.estimate(*pair), ksg.estimate(*pair, unit="bits")
    assert nats.unit == "nats" and bits.unit == "bits"
    assert nats.lower is not None and nats.quantiles  # the bootstrap gave an interval to convert
    assert _close(bits.mi, nats.mi / LN2)
    assert _close(bits.lower, nats.lower / LN2) and _close(bits.upper, nats.upper / LN2)
    assert bits.quantiles.keys() == nats.quantiles.keys()
    for t, v in nats.quantiles.items():
        assert _close(bits.quantiles[t], v / LN2)


def test_gaussian_in_bits(pair):
    g = estimators.get("gaussian")
    nats, bits = g.estimate(*pair), g.estimate(*pair, unit="bits")
    assert bits.mi > nats.mi > 0 and _close(bits.mi, nats.mi / LN2)
    assert bits.to("nats").mi == pytest.approx(nats.mi, rel=1e-12)  # and back


def test_batch_in_bits(gaussian_pair):
    data = [gaussian_pair(n=120, seed=s) for s in range(3)]
    ksg = estimators.get("ksg", k=3)
    nats, bits = ksg.estimate_batch(data), ksg.estimate_batch(data, unit="bits")
    assert [e.unit for e in bits] == ["bits"] * 3
    for a, b in zip(nats, bits):
        assert _close(b.mi, a.mi / LN2)


@pytest.mark.parametrize("bad", ["bit", "Bits", None, 2])
def test_bad_unit_is_a_value_error_naming_it(pair, bad):
    ksg = estimators.get("ksg")
    with pytest.raises(ValueError, match=r"unit must be one of .*nats.*bits.*got " + repr(bad).replace("'", ".")):
        ksg.estimate(*pair, unit=bad)
    with pytest.raises(ValueError, match="unit must be one of"):
        ksg.estimate_batch([pair], unit=bad)
    with pytest.raises(ValueError, match="unit must be one of"):
        Estimate(mi=1.0).to(bad)


def test_to_same_unit_is_an_equal_copy_and_to_dict_has_the_unit():
    est = Estimate(0.5, 0.25, 0.75, {0.5: 0.5}, 1.0, {"k": [1]}, True)  # positional: `unit` comes last
    assert est.unit == "nats"
    same = est.to("nats")
    assert same == est and same is not est and same.info is not est.info and same.info["k"] is not est.info["k"]
    bits = est.to("bits")
    assert est.mi == 0.5 and est.unit == "nats"  # the original is untouched
    assert bits.to_dict()["unit"] == "bits" and est.to_dict()["unit"] == "nats"
    assert bits.to_dict()["quantiles"] == {"0.5": pytest.approx(0.5 / LN2)}


def test_failed_estimate_converts_to_nan():
    failed = Estimate.failed("boom").to("bits")
    assert math.isnan(failed.mi) and not failed.ok and failed.unit == "bits" and failed.info["error"] == "boom"
    # and through the public path: the Gaussian cannot estimate n <= dx + dy
    rng = np.random.default_rng(0)
    est = estimators.get("gaussian").estimate(rng.normal(size=(6, 3)), rng.normal(size=(6, 3)), unit="bits")
    assert not est.ok and math.isnan(est.mi) and est.unit == "bits"


def test_dataframe_gives_the_array_estimate_and_keeps_names(pair):
    x, y = pair
    xf = pd.DataFrame({"height": x[:, 0], "flag": x[:, 0] > 0})  # bool columns are numeric
    yf = pd.DataFrame(y, columns=["weight"])
    ksg = estimators.get("ksg", k=3)
    arrays = ksg.estimate(np.column_stack([x[:, 0], x[:, 0] > 0]), y)
    frames = ksg.estimate(xf, yf)
    assert frames.mi == arrays.mi
    assert frames.info["x_columns"] == ["height", "flag"] and frames.info["y_columns"] == ["weight"]
    assert "x_columns" not in arrays.info
    (batched,) = ksg.estimate_batch([(xf, y)])
    assert batched.mi == ksg.estimate(xf, y).mi
    assert batched.info["x_columns"] == ["height", "flag"] and "y_columns" not in batched.info


def test_series_and_unnamed_frames(pair):
    x, y = pair
    ksg = estimators.get("ksg", k=3)
    est = ksg.estimate(pd.Series(x[:, 0], name="a"), pd.Series(y[:, 0]))
    assert est.mi == ksg.estimate(x, y).mi
    assert est.info["x_columns"] == ["a"] and "y_columns" not in est.info  # an unnamed Series adds nothing
    unnamed = ksg.estimate(pd.DataFrame(x), y)  # pandas' default labels 0..d-1 are positions, not names
    assert "x_columns" not in unnamed.info
    assert column_names(pd.DataFrame(x)) is None and column_names(x) is None
    assert column_names(pd.DataFrame({3: x[:, 0], "b": x[:, 0]})) == ["3", "b"]
    assert column_names(pd.DataFrame({False: x[:, 0], True: x[:, 0]})) == ["False", "True"]
    assert column_names(pd.DataFrame(x[:, [0, 0]])[[1]]) == ["1"]  # a selection: not the default labels


@pytest.mark.parametrize("dtype", ["object", "string", "category"])
def test_non_numeric_column_is_named(pair, dtype):
    x, y = pair
    xf = pd.DataFrame({"ok": x[:, 0], "city": pd.Series(np.where(x[:, 0] > 0, "a", "b")).astype(dtype)})
    with pytest.raises(ValueError, match=r"x has non-numeric column\(s\) 'city'.*cat\.codes") as err:
        estimators.get("ksg").estimate(xf, y)
    assert "'ok'" not in str(err.value)
    with pytest.raises(ValueError, match=r"dataset 0: y has non-numeric column\(s\) 'city'"):
        estimators.get("ksg").estimate_batch([(y, xf)])


def test_category_with_integer_labels_is_refused_not_read_as_numbers(pair):
    # np.asarray would silently give the integer labels
    x, y = pair
    with pytest.raises(ValueError, match="non-numeric column.*'g'"):
        estimators.get("ksg").estimate(pd.Series((x[:, 0] > 0).astype(int), name="g").astype("category"), y)


def test_nullable_dtypes_are_numbers_and_na_is_nan(pair):
    x, y = pair
    xf = pd.DataFrame({"i": pd.Series(np.round(x[:, 0] * 10), dtype="Int64")})
    ksg = estimators.get("ksg", k=3)
    assert ksg.estimate(xf, y).mi == ksg.estimate(np.round(x[:, :1] * 10), y).mi
    xf.loc[5, "i"] = pd.NA
    with pytest.raises(ValueError, match="NaN or inf.*row 5"):
        ksg.estimate(xf, y)


def test_validation_does_not_import_pandas():
    # estimator modules may load pandas on `get`; the interface and validation must not
    code = (
        "import sys, numpy as np, estimators\n"
        "from estimators.validation import validate_pair, column_names\n"
        "validate_pair(np.zeros((5, 1)), np.arange(5.0)); column_names([1.0])\n"
        "print('pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "estimators.cli", *args], capture_output=True, text=True, timeout=120)


def test_cli_unit(tmp_path, pair):
    np.savetxt(tmp_path / "d.csv", np.column_stack(pair), delimiter=",", header="a,b", comments="")
    base = [str(tmp_path / "d.csv"), "--x", "a", "--y", "b", "--estimator", "gaussian"]
    nats = json.loads(_cli(*base, "--json").stdout)
    bits = json.loads(_cli(*base, "--json", "--unit", "bits").stdout)
    assert nats["unit"] == "nats" and bits["unit"] == "bits"
    assert bits["mi"] == pytest.approx(nats["mi"] / LN2, rel=1e-9)
    r = _cli(*base, "--unit", "bits")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("MI = ") and r.stdout.split()[3] == "bits"
    assert float(r.stdout.split()[2]) == pytest.approx(bits["mi"], rel=1e-5)
    assert _cli(*base).stdout.split()[3] == "nats"
    r = _cli(*base, "--unit", "bit")
    assert r.returncode == 2 and "invalid choice: 'bit'" in r.stderr
