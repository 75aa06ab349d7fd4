"""The permutation test: exact p-values, honest ties, the unclipped statistic, bad input."""

import numpy as np
import pandas as pd
import pytest

import estimators
from estimators.independence import IndependenceResult, independence_test, permutation_p_value


def test_p_value_counts_exceedances_and_ties():
    null = np.array([0.1, 0.2, 0.3, 0.5, 0.5])
    p, t = permutation_p_value(0.5, null, "conservative")
    assert (p, t) == (3 / 6, 2)
    p, t = permutation_p_value(0.4, null, "conservative")
    assert (p, t) == (3 / 6, 0)
    # Randomised: between the strict count and the conservative one.
    ps = [permutation_p_value(0.5, null, "randomised", np.random.default_rng(s))[0] for s in range(2000)]
    assert min(ps) > 0 and max(ps) <= 3 / 6 and np.mean(ps) == pytest.approx(1.5 / 6, abs=0.02)
    with pytest.raises(ValueError, match="ties"):
        permutation_p_value(0.5, null, "nearest")


def test_randomised_ties_give_exact_size_on_a_tied_statistic():
    """A statistic with heavy ties (few distinct values): P(p <= alpha) must stay alpha, where the
    conservative rule falls well below it."""
    rng = np.random.default_rng(0)
    rej_r = rej_c = 0
    reps = 4000
    for _ in range(reps):
        stats = rng.integers(0, 3, size=20).astype(float)  # exchangeable, 3 values: many ties
        rej_r += permutation_p_value(stats[0], stats[1:], "randomised", rng)[0] <= 0.05
        rej_c += permutation_p_value(stats[0], stats[1:], "conservative")[0] <= 0.05
    assert abs(rej_r / reps - 0.05) < 3 * np.sqrt(0.05 * 0.95 / reps)
    assert rej_c / reps < 0.02


def test_ksg_test_rejects_dependence_and_keeps_its_size():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 1))
    dep = independence_test(x, np.sin(3 * x) + 0.3 * rng.normal(size=(200, 1)), "ksg", permutations=99, seed=1)
    assert isinstance(dep, IndependenceResult) and dep.reject(0.05)
    assert dep.p_value == pytest.approx(1 / 100, abs=1e-9 + 1 / 100)  # nothing in the null reaches it
    assert dep.null.shape == (99,) and dep.null_mean < dep.statistic
    # Under independence, p-values are uniform: their rejections at 0.2 stay near 0.2.
    ps = [
        independence_test(rng.normal(size=(60, 1)), rng.normal(size=(60, 1)), "ksg", permutations=19, seed=s).p_value
        for s in range(60)
    ]
    assert 0.05 < np.mean(np.array(ps) <= 0.2) < 0.4
    assert 0.3 < np.mean(ps) < 0.7


def test_same_seed_same_result_and_the_statistic_is_unclipped():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(80, 2)), rng.normal(size=(80, 1))
    a = independence_test(x, y, "ksg", permutations=49, seed=7)
    b = independence_test(x, y, "ksg", permutations=49, seed=7)
    assert a.p_value == b.p_value and np.array_equal(a.null, b.null)
    assert a.info["estimator_params"]["clip"] is False
    assert (a.null < 0).any()  # clipping would have tied these at 0
    # The statistic is the estimator's unclipped MI on the data.
    assert a.statistic == pytest.approx(estimators.get("ksg", clip=False).estimate(x, y).mi)


def test_bits_dataframes_and_instances():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    df["c"] = df.a + rng.normal(size=100)
    nats = independence_test(df[["a", "b"]], df["c"], "gaussian", permutations=29)
    bits = independence_test(df[["a", "b"]], df["c"], "gaussian", permutations=29, unit="bits")
    assert bits.statistic == pytest.approx(nats.statistic / np.log(2))
    assert bits.null_quantiles[0.95] == pytest.approx(nats.null_quantiles[0.95] / np.log(2))
    assert bits.p_value == nats.p_value and bits.unit == "bits"
    assert nats.info["x_columns"] == ["a", "b"] and nats.info["y_columns"] == ["c"]
    inst = independence_test(df.a, df.c, estimators.get("gaussian"), permutations=29)
    assert inst.estimator == "gaussian"


def test_bad_input_is_named():
    x = np.zeros((50, 1)) + np.arange(50)[:, None]
    with pytest.raises(ValueError, match="permutations"):
        independence_test(x, x, "ksg", permutations=0)
    with pytest.raises(ValueError, match="unit"):
        independence_test(x, x, "ksg", unit="bans")
    with pytest.raises(ValueError, match="same number of rows"):
        independence_test(x, x[:40], "ksg")
    with pytest.raises(ValueError, match="ties"):
        independence_test(x, x, "ksg", ties="none")


def test_mist_discrete_data_scores_permutations_in_one_batch():
    """Categorical x (3 levels) with a shifted y: the amortised path, recoding every permutation."""
    rng = np.random.default_rng(4)
    x = rng.integers(0, 3, size=(150, 1))
    y = x * 0.8 + rng.normal(size=(150, 1))
    res = independence_test(x, y, "mist", permutations=49, seed=0)
    assert res.reject(0.05) and np.isfinite(res.null).all() and len(res.null) == 49
    null = independence_test(x, rng.normal(size=(150, 1)), "mist", permutations=49, seed=0)
    assert null.p_value > 0.02


def test_mist_feature_workers_change_nothing_but_speed():
    """A batch's features in two worker processes: the same features to the bit; the network then
    runs on one torch thread, whose float32 sums round apart from two threads' by ~1e-7."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(120, 2))
    y = np.abs(x[:, :1]) + rng.normal(size=(120, 1))
    datasets = [(x, y[rng.permutation(120)]) for _ in range(70)]  # above the pool's threshold
    serial = estimators.get("mist_qr").estimate_batch(datasets)
    pooled = estimators.get("mist_qr", workers=2).estimate_batch(datasets)
    a = np.array([list(e.quantiles.values()) for e in serial])
    b = np.array([list(e.quantiles.values()) for e in pooled])
    assert np.allclose(a, b, rtol=1e-5, atol=1e-6)
    from estimators.mist.adapter import _feature_pool, _features_of, _submit_features

    cfg = estimators.get("mist_qr").features
    items = [(d, ([], [])) for d in datasets]
    with _feature_pool(2, len(items)) as pool:
        assert pool is not None
        pooled_features = _submit_features(pool, items, cfg)()
    for f, g in zip(_features_of(items, cfg), pooled_features):
        assert np.array_equal(f[0], g[0]) and np.array_equal(f[1], g[1]) and f[2] == g[2]
    with pytest.raises(ValueError, match="workers"):
        estimators.get("mist", workers=-1)
