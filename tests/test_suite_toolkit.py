"""The suite's independence benchmark and CMI corpus: data, plans and summaries."""

import numpy as np
import pandas as pd
import pytest

from benchmarks import cmi
from benchmarks.independence import (
    ALTERNATIVES,
    NULL_FAMILIES,
    alternative_dataset,
    null_dataset,
    plan,
    power_table,
    type1_table,
)


@pytest.mark.parametrize("family", NULL_FAMILIES)
def test_null_families_are_independent_and_reproducible(family):
    x, y = null_dataset(family, 400, 2, 3, seed=1)
    x2, y2 = null_dataset(family, 400, 2, 3, seed=1)
    assert x.shape == (400, 2) and y.shape == (400, 3)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    # Independent blocks: no cross-correlation of ranks beyond sampling noise.
    from scipy.stats import spearmanr

    r = spearmanr(np.hstack([x, y])).statistic[:2, 2:]
    assert np.abs(r).max() < 0.2


@pytest.mark.parametrize("family", ALTERNATIVES)
def test_alternatives_are_independent_at_strength_0_and_dependent_at_1(family):
    import estimators

    ksg = estimators.get("ksg")
    at0 = ksg.estimate(*alternative_dataset(family, 0.0, 2000, seed=2)).mi
    at1 = ksg.estimate(*alternative_dataset(family, 1.0, 2000, seed=2)).mi
    assert at0 < 0.03 < at1


def test_plan_nests_a_methods_fewer_repetitions_in_the_others():
    cfg = {
        "seed": 1,
        "size": {"families": ["gaussian"], "n": [50, 100], "d": [1, 30], "reps": 2, "reps_by_method": {"slow": 1}},
        "power": {"families": ["linear"], "n": 60, "strengths": [0, 1], "reps": 2},
    }
    full, slow = plan(cfg), plan(cfg, "slow")
    assert all(r["n"] >= 4 * r["dx"] for r in full)  # (50, 30) and (100, 30) are left out
    assert len([r for r in full if r["study"] == "size"]) == 4 and len(slow) == 2 + 4
    key = lambda r: (r["study"], r["family"], r["n"], r["dx"], r["strength"], r["rep"])  # noqa: E731
    seeds = {key(r): r["seed"] for r in full}
    assert all(seeds[key(r)] == r["seed"] for r in slow)


def test_type1_counts_failures_apart_and_power_by_strength():
    df = pd.DataFrame(
        {
            "study": ["size"] * 4 + ["power"] * 4,
            "family": ["gaussian"] * 4 + ["linear"] * 4,
            "method": "m",
            "strength": [0, 0, 0, 0, 0, 0, 1, 1],
            "p_value": [0.01, 0.5, np.nan, 0.9, 0.5, 0.6, 0.01, 0.02],
        }
    )
    t = type1_table(df, 0.05, (0.035, 0.065)).set_index("family")
    assert t.loc["gaussian", "tests"] == 3 and t.loc["gaussian", "failed"] == 1
    assert t.loc["gaussian", "type1"] == pytest.approx(1 / 3) and not t.loc["gaussian", "in_band"]
    assert t.loc["gaussian", "ci_low"] < 1 / 3 < t.loc["gaussian", "ci_high"]
    p = power_table(df, 0.05).set_index("strength")
    assert p.loc[0, "power"] == 0 and p.loc[1, "power"] == 1


def test_cmi_corpus_round_trips_and_summarises_in_either_unit(tmp_path):
    cfg = {"seed": 3, "n": [2000], "dims": [1, 2], "strengths": [0, 1.0], "reps": 1}
    path = tmp_path / "cmi.npz"
    cmi.build(cfg, path)
    table, data = cmi.load(path)
    assert len(table) == 4 == len(data) and (table.loc[table.strength == 0, "true_cmi"] == 0).all()
    assert (table["true_mi"] > 0).all()  # dependent through z even where conditionally independent
    est = cmi.estimate("gaussian", {"estimator": "gaussian", "params": {"method": "exact"}}, path)
    assert np.allclose(est["cmi"], est["true_cmi"], atol=0.08)
    nats, bits = cmi.summary(est), cmi.summary(est, "bits")
    assert np.allclose(bits["mse"], nats["mse"] / np.log(2) ** 2)
    assert list(nats["d"]) == [1, 2, "all"]
