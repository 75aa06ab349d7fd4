"""Conditional MI (`estimators.conditional`) and its Gaussian tasks (`estimators.synthetic.cmi_tasks`)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

import estimators
from estimators.conditional import (
    CHAIN_RULE,
    _block_counts,
    _Blocks,
    _fp_counts,
    conditional_mi,
    gaussian_cmi,
    ksg_cmi,
)
from estimators.synthetic.cmi_tasks import analytic_cmi, analytic_mi, gaussian_cmi_task, mixing, sample


def _task(dims, strength, seed, n, mediation=1.0):
    cov, cmi = gaussian_cmi_task(*dims, strength=strength, seed=seed, mediation=mediation)
    return (*sample(cov, *dims, n=n, rng=np.random.default_rng(seed + 100)), cov, cmi)


def _partial_canonical_correlations(cov, dx, dy):
    """Canonical correlations of X and Y given Z (the rest), from the population covariance."""
    a, b = slice(0, dx + dy), slice(dx + dy, None)
    c = cov[a, a] - cov[a, b] @ np.linalg.solve(cov[b, b], cov[b, a])
    w = np.diag(1 / np.sqrt(np.diag(c)))
    c = w @ c @ w

    def inv_sqrt(m):
        v, u = np.linalg.eigh(m)
        return (u / np.sqrt(v)) @ u.T

    m = inv_sqrt(c[:dx, :dx]) @ c[:dx, dx:] @ inv_sqrt(c[dx:, dx:])
    return np.linalg.svd(m, compute_uv=False)


# ---------------------------------------------------------------------------
# Tasks


@pytest.mark.parametrize("dims", [(1, 1, 1), (2, 3, 4), (10, 10, 10)])
@pytest.mark.parametrize("strength", [0.0, 0.5, 2.0])
def test_task_cmi_is_the_direct_paths_closed_form(dims, strength):
    # Given Z, Y = C e_x + e_y + f(Z): I(X; Y | Z) = 1/2 logdet(I + C C').
    dx, dy, _ = dims
    cov, cmi = gaussian_cmi_task(*dims, strength=strength, seed=3)
    c = mixing(*dims, strength=strength, seed=3)[dx : dx + dy, dims[2] : dims[2] + dx]
    assert cmi == pytest.approx(0.5 * np.linalg.slogdet(np.eye(dy) + c @ c.T)[1], abs=1e-10)
    assert analytic_cmi(cov, *dims) == pytest.approx(cmi, abs=1e-10)
    if strength == 0:
        assert cmi == 0.0 and analytic_mi(cov, dx, dy) > 0.01  # dependent, but only through Z
    x, y, z = sample(cov, *dims, n=20_000, rng=np.random.default_rng(0))
    assert x.shape == (20_000, dx) and y.shape == (20_000, dy) and z.shape == (20_000, dims[2])
    emp = np.cov(np.hstack([x, y, z]), rowvar=False)
    assert np.abs(emp - cov).max() < 0.1 * np.abs(cov).max()


def test_task_same_seed_same_structure_across_strengths():
    w0, w1 = mixing(2, 2, 2, 0.0, 5), mixing(2, 2, 2, 1.0, 5)
    assert np.array_equal(w0[:2], w1[:2])  # X = A Z + e_x: the same A
    with pytest.raises(ValueError, match="dimensions"):
        gaussian_cmi_task(0, 1, 1, 1.0, 0)


# ---------------------------------------------------------------------------
# Gaussian closed form


@pytest.mark.parametrize("dims", [(1, 1, 1), (2, 3, 1), (3, 3, 3)])
@pytest.mark.parametrize("strength", [0.0, 1.0])
def test_gaussian_cmi_within_sampling_error(dims, strength):
    n = 20_000
    x, y, z, cov, cmi = _task(dims, strength, seed=1, n=n)
    rho = _partial_canonical_correlations(cov, dims[0], dims[1])
    # Delta method: sd of the MLE ~ sqrt(sum rho^2 / n); at CMI = 0, 2 n I ~ chi2(dx dy): mean and
    # sd of dx dy / 2n and sqrt(2 dx dy) / 2n, added so the bound holds at 0 too.
    k = dims[0] * dims[1]
    tol = 4 * math.sqrt((rho**2).sum() / n) + (k + 4 * math.sqrt(2 * k)) / (2 * n)
    est = gaussian_cmi(x, y, z)
    assert abs(est - cmi) < tol
    assert conditional_mi(x, y, z, estimator="gaussian").mi == est


def test_gaussian_chain_rule_is_the_closed_form():
    # The Gaussian MLE obeys the chain rule exactly: I(X; Y,Z) - I(X; Z) from the same sample covariance.
    x, y, z, _, _ = _task((2, 2, 3), 1.0, seed=2, n=500)
    chain = conditional_mi(x, y, z, estimator="gaussian", chain_rule=True, method="exact")
    assert chain.info["method"] == CHAIN_RULE
    assert chain.mi == pytest.approx(gaussian_cmi(x, y, z), abs=1e-9)


def test_gaussian_too_few_rows_is_a_failed_estimate():
    rng = np.random.default_rng(0)
    x, y, z = rng.normal(size=(6, 2)), rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    est = conditional_mi(x, y, z, estimator="gaussian")
    assert not est.ok and "dx + dy + dz = 6" in est.info["error"]
    with pytest.raises(ValueError, match="n = 6"):
        gaussian_cmi(x, y, z)
    x, y, z = rng.normal(size=(20, 1)), rng.normal(size=(20, 2)), rng.normal(size=(20, 2))
    dup = conditional_mi(x, y, np.hstack([z, 2 * x]), estimator="gaussian")  # a column of z is 2 x
    assert not dup.ok and "linearly dependent" in dup.info["error"]


def test_gaussian_constant_z_is_mi():
    x, y, _, _, _ = _task((2, 2, 1), 1.0, seed=0, n=400)
    mi = estimators.get("gaussian", method="exact").estimate(x, y).mi
    assert gaussian_cmi(x, y, np.full(400, 3.0)) == pytest.approx(mi, abs=1e-9)


# ---------------------------------------------------------------------------
# Frenzel-Pompe KSG


@pytest.mark.parametrize("dims", [(1, 1, 1), (1, 1, 2), (1, 1, 3), (2, 2, 2)])
def test_ksg_cmi_near_analytic(dims):
    # KSG's bias grows with the joint dimension: at (3, 3, 3) it is -0.05 to -0.4 nats at n = 2000.
    x, y, z, _, cmi = _task(dims, 0.5, seed=0, n=2000)
    assert abs(ksg_cmi(x, y, z, clip=False) - cmi) < 0.05


@pytest.mark.parametrize("dims", [(1, 1, 1), (2, 2, 2), (3, 3, 3)])
def test_ksg_cmi_zero_when_conditionally_independent(dims):
    # Strong dependence through Z (mediation 2), none given Z: conditioning must remove it.
    x, y, z, cov, cmi = _task(dims, 0.0, seed=1, n=2000, mediation=2.0)
    assert cmi == 0.0 and estimators.get("ksg").estimate(x, y).mi > 0.1
    assert abs(ksg_cmi(x, y, z, clip=False)) < 0.04


def test_ksg_cmi_with_constant_z_is_our_ksg():
    # n_z = n - 1 for every point: the formula is KSG's I(X; Y), to rounding.
    x, y, _, _, _ = _task((2, 2, 1), 1.0, seed=4, n=1000)
    for metric in ("euclidean", "chebyshev"):
        mi = estimators.get("ksg", clip=False, metric=metric).estimate(x, y).mi
        assert ksg_cmi(x, y, np.zeros(1000), clip=False, metric=metric) == pytest.approx(mi, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_ksg_cmi_with_independent_z_is_close_to_our_ksg(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2000, 1))
    y = 0.7 * x + rng.normal(size=(2000, 1))
    z = rng.normal(size=(2000, 1))
    mi = estimators.get("ksg", clip=False).estimate(x, y).mi
    assert abs(ksg_cmi(x, y, z, clip=False) - mi) < 0.04


def test_ksg_direct_estimate_and_bootstrap():
    x, y, z, _, cmi = _task((1, 1, 1), 1.0, seed=0, n=500)
    est = conditional_mi(x, y, z)
    assert est.ok and est.mi == ksg_cmi(x, y, z) and est.info["k"] == 5 and est.info["quantity"] == "cmi"
    boot = conditional_mi(x, y, z, n_bootstrap=10, level=0.8)
    assert boot.mi == est.mi and boot.lower <= boot.mi <= boot.upper and boot.info["interval_level"] == 0.8
    indep = np.random.default_rng(0).normal(size=(500, 3))
    raw = ksg_cmi(indep[:, :1], indep[:, 1:2], indep[:, 2:], clip=False)
    clipped = conditional_mi(indep[:, :1], indep[:, 1:2], indep[:, 2:])
    assert clipped.mi == max(0.0, raw) and (raw >= 0 or clipped.info["unclipped_nats"] == raw)


def _tied_data(n=600, seed=0):
    r = np.random.default_rng(seed)
    x = r.integers(0, 3, size=(n, 4)).astype(float)  # 4 columns: through the matmul, where rounding can tie
    z = r.integers(0, 3, size=(n, 4)).astype(float)
    y = x[:, :2] + z[:, :2] + r.integers(0, 2, size=(n, 2))
    return x, y, z


@pytest.mark.parametrize("metric", ["euclidean", "chebyshev"])
def test_ksg_ties_are_decided_exactly(metric):
    # On small-integer data most distances tie; the rows the fast pass flags are redone exactly, so
    # the counts are those of exact arithmetic on every row.
    x, y, z = _tied_data()
    b = _Blocks(x, y, z, metric, standardize=True)
    rows = torch.arange(len(x))
    _, _, flagged = _block_counts(b, rows, 5, exact=False)
    exact, eps2, _ = _block_counts(b, rows, 5, exact=True)
    assert (eps2 > 0).all()
    if metric == "euclidean":
        assert flagged.sum() > 100  # the exact pass is exercised
    assert np.array_equal(_fp_counts(b, 5), exact.numpy())
    # Exact: reordering the rows reorders the counts, nothing else.
    perm = np.random.default_rng(1).permutation(len(x))
    assert np.array_equal(_fp_counts(_Blocks(x[perm], y[perm], z[perm], metric, True), 5), exact.numpy()[perm])


def test_ksg_rows_with_k_copies_are_undefined():
    rng = np.random.default_rng(0)
    x, y, z = rng.normal(size=(100, 1)), rng.normal(size=(100, 1)), rng.normal(size=(100, 1))
    rep = np.r_[np.arange(100), [7] * 5]  # row 7 six times: 5 copies = k
    with pytest.raises(ValueError, match="6 row\\(s\\) have at least k = 5 exact copies"):
        ksg_cmi(x[rep], y[rep], z[rep])
    est = conditional_mi(x[rep], y[rep], z[rep])
    assert not est.ok and "exact copies" in est.info["error"]
    assert conditional_mi(x[rep], y[rep], z[rep], k=6).ok  # k copies fewer than k: defined


# ---------------------------------------------------------------------------
# Chain rule


@pytest.mark.parametrize("name", ["ksg", "gaussian"])
def test_chain_rule_is_the_difference_of_two_estimates(name):
    x, y, z, _, _ = _task((2, 1, 2), 1.0, seed=3, n=600)
    est = conditional_mi(x, y, z, estimator=name, chain_rule=True)
    e = estimators.get(name)
    joint, marginal = e.estimate(x, np.hstack([y, z])).mi, e.estimate(x, z).mi
    assert est.mi == joint - marginal
    assert est.info["method"] == CHAIN_RULE
    assert est.info["parts"]["I(X;Y,Z)"].mi == joint and est.info["parts"]["I(X;Z)"].mi == marginal
    assert conditional_mi(x, y, z, estimator=e).mi == est.mi  # an instance: always the chain rule


def test_chain_rule_interval_is_the_conservative_union():
    x, y, z, _, _ = _task((1, 1, 1), 1.0, seed=0, n=300)
    est = conditional_mi(x, y, z, estimator="ksg", chain_rule=True, n_bootstrap=20)
    joint, marginal = est.info["parts"]["I(X;Y,Z)"], est.info["parts"]["I(X;Z)"]
    assert joint.lower is not None and marginal.upper is not None
    assert est.lower == joint.lower - marginal.upper and est.upper == joint.upper - marginal.lower
    assert est.info["interval_level"] == 0.9 and est.info["interval_coverage_at_least"] == pytest.approx(0.8)
    assert "conservative" in est.info["interval"]
    no_interval = conditional_mi(x, y, z, estimator="ksg", chain_rule=True)
    assert no_interval.lower is None and "interval_level" not in no_interval.info


def test_chain_rule_is_not_clipped():
    # Independent data: I(X; Y,Z) - I(X; Z) from unclipped KSG falls below 0 about half the time.
    seen_negative = False
    for seed in range(6):
        d = np.random.default_rng(seed).normal(size=(300, 3))
        est = conditional_mi(d[:, :1], d[:, 1:2], d[:, 2:], estimator="ksg", chain_rule=True, clip=False)
        parts = est.info["parts"]
        assert est.mi == parts["I(X;Y,Z)"].mi - parts["I(X;Z)"].mi
        assert est.info.get("negative", False) == (est.mi < 0)
        seen_negative |= est.mi < 0
    assert seen_negative


def test_chain_rule_part_failure_is_a_failed_estimate():
    rng = np.random.default_rng(0)
    x, y, z = rng.normal(size=(5, 2)), rng.normal(size=(5, 2)), rng.normal(size=(5, 1))
    est = conditional_mi(x, y, z, estimator="gaussian", chain_rule=True)  # n = 5 <= dx + dy + dz
    assert not est.ok and est.info["error"].startswith("chain rule: I(X;Y,Z) failed")


# ---------------------------------------------------------------------------
# Input, units, parameters


def test_bad_z_raises_naming_z():
    rng = np.random.default_rng(0)
    x, y, z = rng.normal(size=(50, 1)), rng.normal(size=(50, 1)), rng.normal(size=(50, 2))
    with pytest.raises(ValueError, match="z must have the same number of rows"):
        conditional_mi(x, y, z[:40])
    bad = z.copy()
    bad[3, 1] = np.nan
    for f in (conditional_mi, ksg_cmi, gaussian_cmi):
        with pytest.raises(ValueError, match="z contains NaN or inf \\(first at row 3, column 1\\)"):
            f(x, y, bad)
    with pytest.raises(ValueError, match="z must have a numeric dtype"):
        conditional_mi(x, y, np.array(["a"] * 50))
    with pytest.raises(ValueError, match="x and y must have the same number of rows"):
        conditional_mi(x[:10], y, z)
    with pytest.raises(ValueError, match="too few rows"):
        conditional_mi(x[:5], y[:5], z[:5])


def test_bad_parameters():
    x = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.raises(TypeError, match="n_bootstraps"):
        conditional_mi(x[:, :1], x[:, 1:2], x[:, 2:], n_bootstraps=10)
    with pytest.raises(TypeError, match="takes no parameters"):
        conditional_mi(x[:, :1], x[:, 1:2], x[:, 2:], estimator="gaussian", method="exact")
    with pytest.raises(ValueError, match="no direct CMI method for 'mine'"):
        conditional_mi(x[:, :1], x[:, 1:2], x[:, 2:], estimator="mine", chain_rule=False)
    with pytest.raises(ValueError, match="unit"):
        conditional_mi(x[:, :1], x[:, 1:2], x[:, 2:], unit="bans")
    with pytest.raises(ValueError, match="metric"):
        ksg_cmi(x[:, :1], x[:, 1:2], x[:, 2:], metric="manhattan")


def test_bits_are_nats_over_ln2():
    x, y, z, _, _ = _task((1, 1, 1), 1.0, seed=0, n=300)
    for kw in ({}, {"estimator": "gaussian"}, {"estimator": "ksg", "chain_rule": True, "n_bootstrap": 4}):
        nats, bits = conditional_mi(x, y, z, **kw), conditional_mi(x, y, z, unit="bits", **kw)
        assert nats.unit == "nats" and bits.unit == "bits"
        assert bits.mi == pytest.approx(nats.mi / math.log(2), rel=1e-12)
        if nats.lower is not None:
            assert bits.lower == pytest.approx(nats.lower / math.log(2), rel=1e-12)
            assert bits.upper == pytest.approx(nats.upper / math.log(2), rel=1e-12)
        for what, part in nats.info.get("parts", {}).items():
            assert bits.info["parts"][what].mi == pytest.approx(part.mi / math.log(2), rel=1e-12)


def test_dataframes_and_constant_x():
    x, y, z, _, _ = _task((2, 1, 2), 1.0, seed=0, n=300)
    frames = [pd.DataFrame(a) for a in (x, y, z)]
    assert conditional_mi(*frames).mi == conditional_mi(x, y, z).mi
    named = conditional_mi(x, y, pd.DataFrame(z, columns=["age", "dose"]), estimator="gaussian")
    assert named.info["z_columns"] == ["age", "dose"] and "x_columns" not in named.info
    est = conditional_mi(np.ones(300), y, z, estimator="mine")  # answered before any training
    assert est.ok and est.mi == 0.0 and "x is constant" in est.info["exact"]
