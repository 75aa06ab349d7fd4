"""MI matrices and feature ranking: symmetry, labels, groups, units, bad input."""

import numpy as np
import pandas as pd
import pytest

import estimators


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    df["d"] = df.a + 0.5 * rng.normal(size=n)
    return df


def test_matrix_of_a_dataframe_is_labelled_symmetric_and_matches_pairwise_estimates():
    df = _data()
    m = estimators.mi_matrix(df, "gaussian", params={"method": "exact"})
    assert list(m.index) == list(m.columns) == ["a", "b", "c", "d"]
    assert np.isnan(np.diag(m.to_numpy())).all()
    assert np.allclose(m.to_numpy(), m.to_numpy().T, equal_nan=True)
    est = estimators.get("gaussian", method="exact")
    assert m.loc["a", "d"] == pytest.approx(est.estimate(df.a, df.d).mi)
    assert m.loc["a", "d"] > 0.4 > m.loc["b", "c"]
    bits = estimators.mi_matrix(df, "gaussian", params={"method": "exact"}, unit="bits")
    assert bits.loc["a", "d"] == pytest.approx(m.loc["a", "d"] / np.log(2))


def test_groups_and_arrays():
    df = _data()
    arr = df.to_numpy()
    plain = estimators.mi_matrix(arr, "ksg")
    assert isinstance(plain, np.ndarray) and plain.shape == (4, 4)
    g, ests = estimators.mi_matrix(df, "ksg", groups={"ab": ["a", "b"], "cd": ["c", "d"]}, return_estimates=True)
    assert list(g.columns) == ["ab", "cd"]
    assert g.loc["ab", "cd"] == pytest.approx(estimators.get("ksg").estimate(arr[:, :2], arr[:, 2:]).mi)
    assert set(ests) == {(0, 1)}
    unnamed = estimators.mi_matrix(arr, "ksg", groups=[[0, 1], [2], [3]])
    assert isinstance(unnamed, np.ndarray) and unnamed.shape == (3, 3)
    with pytest.raises(ValueError, match="in group"):
        estimators.mi_matrix(df, "ksg", groups={"x": ["a"], "y": ["a", "b"]})
    with pytest.raises(ValueError, match="unknown column"):
        estimators.mi_matrix(df, "ksg", groups={"x": ["a"], "y": ["zz"]})
    with pytest.raises(ValueError, match="at least two"):
        estimators.mi_matrix(df[["a"]], "ksg")


def test_rank_features_orders_by_mi_and_keeps_names():
    df = _data()
    table = estimators.rank_features(df[["b", "c", "a"]], df.d, "ksg")
    assert list(table.feature)[0] == "a"
    assert (np.diff(table.mi.to_numpy()) <= 0).all()
    assert table.lower.isna().all()  # KSG without bootstrap gives no interval
    qr = estimators.rank_features(df[["b", "a"]].to_numpy(), df.d, "ksg", params={"n_bootstrap": 20}, unit="bits")
    assert list(qr.feature) == ["1", "0"] and (qr.lower <= qr.mi).all() and qr.attrs["unit"] == "bits"
    with pytest.raises(ValueError, match="same number of rows"):
        estimators.rank_features(df[["a"]], df.d[:10], "ksg")
