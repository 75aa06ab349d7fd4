"""The test-only splits beyond monotone dependence: `mixture`, `mixed` and `flow`.

Ground truth is checked against references computed another way (analytic Gaussian / Student-t MI,
quadrature on a grid with scipy's densities, scikit-learn's mutual_info_score, exact sums), the
Monte Carlo standard errors are checked to be recorded and <= 0.01 nats, and every family is
checked for determinism, JSON-ready parameters and its minimum dimension.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from estimators.synthetic import gaussian_tasks, metadataset
from estimators.synthetic.discrete_families import (
    GaussianGivenCategory,
    PoissonGivenCategory,
    category_mi,
    poisson_common_mi,
    table_mi,
)
from estimators.synthetic.families import FAMILIES, get_family, min_dim_of, split_families
from estimators.synthetic.flow_families import IntervalExchange, ZukoMap, random_interval_exchange
from estimators.synthetic.mixture_families import TARGET_SE, Mixture, mixture_mi

NEW_SPLITS = ("mixture", "mixed", "flow")
NEW_FAMILIES = sorted(n for s in NEW_SPLITS for n in split_families(s))
MC_FAMILIES = ("mix-gauss-k2_6", "mix-student-k2_6", "mixed-cat_gauss", "mixed-cat_poisson")


def _random_cov(d, rng):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + np.diag(rng.uniform(0.3, 1.0, size=d))


# ---------------------------------------------------------------------------
# Splits


def test_new_splits_are_registered_test_only_and_disjoint():
    train = set(split_families("train"))
    seen = set()
    for split in NEW_SPLITS:
        names = split_families(split)
        assert names and not set(names) & train and not set(names) & seen
        seen |= set(names)
        for name in names:
            assert get_family(name) is FAMILIES[name]
    assert {"mix-gauss-k2_6", "mixed-cat_gauss", "mixed-cat_cat", "flow-zuko-normal_sparse"} <= seen
    for split in NEW_SPLITS:  # the meta-dataset refuses them
        with pytest.raises(ValueError, match="training families"):
            metadataset.train_families({"families": split})


# ---------------------------------------------------------------------------
# Mixtures


@pytest.mark.parametrize("student", [False, True])
def test_one_component_mixture_is_the_analytic_mi(student):
    """K = 1: plain Monte Carlo (no control variate) agrees with the closed form within its SE,
    and with the control variate the estimate is the closed form."""
    rng = np.random.default_rng(11)
    dx, dy = 2, 3
    cov = _random_cov(dx + dy, rng)
    df = 4.5 if student else None
    exact = gaussian_tasks.student_mi(cov, dx, df) if student else gaussian_tasks.gaussian_mi(cov, dx)
    mix = Mixture(np.ones(1), rng.normal(size=(1, dx + dy)), cov[None], dx, None if df is None else np.array([df]))
    plain, se, rows = mixture_mi(mix, seed=5, control_variate=False)
    assert se <= TARGET_SE and abs(plain - exact) < 4 * se, (plain, exact, se)
    cv, se_cv, _ = mixture_mi(mix, seed=5)
    assert cv == pytest.approx(exact, abs=1e-10) and se_cv < 1e-10


def test_components_with_a_common_y_part_give_zero_mi():
    """x independent of y within every component and y's part shared: p(x, y) = p(x) p(y)."""
    rng = np.random.default_rng(2)
    dx, dy, k = 3, 2, 4
    cy = _random_cov(dy, rng)
    covs = np.zeros((k, dx + dy, dx + dy))
    means = np.zeros((k, dx + dy))
    for j in range(k):
        covs[j, :dx, :dx], covs[j, dx:, dx:] = _random_cov(dx, rng), cy
        means[j, :dx] = rng.normal(0, 3, size=dx)
    means[:, dx:] = rng.normal(size=dy)
    mix = Mixture(rng.dirichlet(np.ones(k)), means, covs, dx)
    est, se, _ = mixture_mi(mix, seed=1, control_variate=False)
    assert abs(est) < max(4 * se, 1e-9)


def test_label_only_dependence_is_bounded_by_the_label_entropy():
    """Block-diagonal components (x independent of y given the label) with distinct means in both
    blocks: 0 < MI <= H(weights)."""
    rng = np.random.default_rng(3)
    dx, k = 2, 3
    w = np.array([0.5, 0.3, 0.2])
    covs = np.stack([np.eye(4) for _ in range(k)])
    means = rng.normal(0, 4, size=(k, 4))
    est, se, _ = mixture_mi(Mixture(w, means, covs, dx), seed=2)
    h = -np.sum(w * np.log(w))
    assert 0.1 < est <= h + 3 * se


def _quadrature_mi(logpdf_joint, logpdf_x, logpdf_y, lim, num):
    g = np.linspace(-lim, lim, num)
    h = g[1] - g[0]
    xx, yy = np.meshgrid(g, g, indexing="ij")
    lj = logpdf_joint(np.column_stack([xx.ravel(), yy.ravel()])).reshape(num, num)
    pmi = lj - logpdf_x(g)[:, None] - logpdf_y(g)[None, :]
    return float(np.sum(np.exp(lj) * pmi) * h * h)


@pytest.mark.parametrize("student", [False, True])
def test_mixture_mi_equals_quadrature_in_two_dimensions(student):
    """A non-monotone 1 + 1 dimensional mixture (components with opposite correlations): the
    stratified control-variate estimate against a grid integral of scipy's densities."""
    w = np.array([0.45, 0.35, 0.2])
    means = np.array([[-1.5, 1.5], [1.5, 1.0], [0.0, -2.0]])
    covs = np.array([[[1.0, -0.8], [-0.8, 1.0]], [[1.0, 0.8], [0.8, 1.0]], [[0.5, 0.1], [0.1, 2.0]]])
    dfs = np.array([3.0, 5.0, 8.0]) if student else None
    mix = Mixture(w, means, covs, 1, dfs)
    est, se, _ = mixture_mi(mix, seed=7)
    assert se <= TARGET_SE

    def comp(k, sub):
        m, c = means[k][sub], covs[k][np.ix_(sub, sub)]
        if student:
            return stats.multivariate_t(m, c, df=dfs[k]) if len(sub) == 2 else stats.t(dfs[k], m[0], np.sqrt(c[0, 0]))
        return stats.multivariate_normal(m, c) if len(sub) == 2 else stats.norm(m[0], np.sqrt(c[0, 0]))

    def mixture_logpdf(sub):
        def f(a):
            return logsumexp([np.log(w[k]) + comp(k, sub).logpdf(a) for k in range(3)], axis=0)

        return f

    lim, num = (60.0, 2401) if student else (12.0, 1201)  # t: the mass beyond 60 is ~1e-5
    ref = _quadrature_mi(mixture_logpdf([0, 1]), mixture_logpdf([0]), mixture_logpdf([1]), lim, num)
    assert abs(est - ref) < 4 * se + 2e-3, (est, ref, se)


def test_control_variate_agrees_with_plain_monte_carlo():
    fam = get_family("mix-student-k2_6")
    dist = fam.draw(3, 2, np.random.default_rng(8))
    plain, se, _ = mixture_mi(dist.sampler, seed=3, control_variate=False)
    assert abs(plain - dist.params["mi_mc_estimate"]) < 4 * np.hypot(se, dist.params["mi_se"])


def test_mixture_samples_follow_the_mixture():
    """The sampler and the density agree: the sample's mean log density matches the density's
    expectation estimated from per-component draws (i.e. the sampler draws the mixture it scores)."""
    dist = get_family("mix-gauss-k2_6").draw(2, 2, np.random.default_rng(4))
    mix = dist.sampler
    x, y = dist.sample(40000, np.random.default_rng(1))
    lj, lx, ly = mix.log_densities(x, y)
    assert abs(np.mean(lj - lx - ly) - dist.mi) < 5 * np.std(lj - lx - ly) / np.sqrt(len(x)) + 0.03
    comp_means = np.array([mix.sample_component(k, 20000, np.random.default_rng(k)).mean(0) for k in range(mix.k)])
    assert np.allclose(np.hstack([x, y]).mean(0), mix.weights @ comp_means, atol=0.08)


# ---------------------------------------------------------------------------
# Discrete and mixed


def test_table_mi_equals_sklearn_and_is_invariant_to_relabelling():
    from sklearn.metrics import mutual_info_score

    rng = np.random.default_rng(0)
    for alpha in (0.05, 0.5, 5.0):
        pmf = rng.dirichlet(np.full(7 * 4, alpha)).reshape(7, 4)
        ours = table_mi(pmf)
        counts = np.round(pmf * 1e8).astype(np.int64)  # scikit-learn takes integer counts
        assert table_mi(counts) == pytest.approx(mutual_info_score(None, None, contingency=counts), abs=1e-10)
        assert table_mi(counts) == pytest.approx(ours, abs=1e-6)
        perm = table_mi(pmf[rng.permutation(7)][:, rng.permutation(4)])
        assert perm == pytest.approx(ours, abs=1e-12)
    assert table_mi(np.outer([0.2, 0.8], [0.5, 0.3, 0.2])) == pytest.approx(0.0, abs=1e-15)


def test_cat_cat_family_mi_is_its_table_and_the_sample_matches():
    from sklearn.metrics import mutual_info_score

    dist = get_family("mixed-cat_cat").draw(3, 2, np.random.default_rng(5))
    pmf = np.array(dist.params["pmf"])
    assert dist.mi == table_mi(pmf)
    x, y = dist.sample(200_000, np.random.default_rng(0))
    assert x.dtype == np.float64 and np.array_equal(x, np.round(x)) and np.array_equal(y, np.round(y))
    plug_in = mutual_info_score(x[:, 0].astype(int), y[:, 0].astype(int))  # column 0 codes the category
    assert plug_in == pytest.approx(dist.mi, abs=0.01)
    # Relabelling the categories of x (another code order) does not change the plug-in MI.
    relabel = np.random.default_rng(1).permutation(int(x[:, 0].max()) + 1)
    assert mutual_info_score(relabel[x[:, 0].astype(int)], y[:, 0].astype(int)) == pytest.approx(plug_in, abs=1e-12)


def test_cat_gauss_mi_equals_quadrature_and_ignores_the_category_order():
    rng = np.random.default_rng(6)
    k = 4
    w = rng.dirichlet(np.full(k, 2.0))
    means, sds = rng.normal(0, 1.5, size=(k, 1)), rng.uniform(0.5, 1.5, size=k)
    cond = GaussianGivenCategory(means, (sds**2)[:, None, None])
    est, se, _ = category_mi(w, cond, seed=3)
    g = np.linspace(-20, 20, 40001)
    lp = np.log(w)[:, None] + stats.norm(means[:, 0][:, None], sds[:, None]).logpdf(g[None, :])
    ly = logsumexp(lp, axis=0)
    ref = float(np.sum(np.exp(lp) * (lp - np.log(w)[:, None] - ly)) * (g[1] - g[0]))
    assert se <= TARGET_SE and abs(est - ref) < 4 * se, (est, ref, se)
    p = rng.permutation(k)
    est_p, se_p, _ = category_mi(w[p], GaussianGivenCategory(means[p], (sds[p] ** 2)[:, None, None]), seed=3)
    assert abs(est_p - est) < 4 * np.hypot(se, se_p)


def test_cat_poisson_mi_equals_exact_sum():
    rng = np.random.default_rng(7)
    w = rng.dirichlet(np.full(3, 2.0))
    rates = np.array([[0.7], [3.0], [9.0]])
    est, se, _ = category_mi(w, PoissonGivenCategory(rates), seed=4)
    yv = np.arange(200)
    lp = np.log(w)[:, None] + stats.poisson(rates).logpmf(yv[None, :])
    ref = float(np.sum(np.exp(lp) * (lp - np.log(w)[:, None] - logsumexp(lp, axis=0))))
    assert se <= TARGET_SE and abs(est - ref) < 4 * se, (est, ref, se)


def test_poisson_common_mi_matches_entropies_and_sklearn():
    from sklearn.metrics import mutual_info_score

    for la, lb, ls in [(0.5, 2.0, 3.0), (4.0, 0.1, 9.0), (2.0, 2.0, 0.2)]:
        mi, bound = poisson_common_mi(la, lb, ls)
        assert bound < 1e-9
        m = 150
        a, b, s = (stats.poisson(r).pmf(np.arange(m)) for r in (la, lb, ls))
        joint = np.zeros((m, m))  # independent construction: loop over (a, b, s) by convolution
        for si in range(60):
            joint[si:, si:] += s[si] * np.outer(a[: m - si], b[: m - si])
        h = lambda p: -np.sum(p[p > 0] * np.log(p[p > 0]))  # noqa: E731
        ref = h(joint.sum(1)) + h(joint.sum(0)) - h(joint)
        assert mi == pytest.approx(ref, abs=1e-8)
        counts = np.round(joint * 1e8).astype(np.int64)  # scikit-learn takes integer counts
        assert mi == pytest.approx(mutual_info_score(None, None, contingency=counts), abs=1e-6)
    assert poisson_common_mi(3.0, 3.0, 1e-9)[0] < 1e-8  # no common part: independent


def test_mixed_families_hold_integers_in_floats():
    for name in ("mixed-cat_gauss", "mixed-cat_cat", "mixed-cat_poisson", "mixed-poisson_common"):
        dist = get_family(name).draw(4, 3, np.random.default_rng(1))
        x, y = dist.sample(300, np.random.default_rng(2))
        assert x.dtype == np.float64 and np.array_equal(x, np.round(x)), name
        if name != "mixed-cat_gauss":
            assert y.dtype == np.float64 and np.array_equal(y, np.round(y)), name
        if name != "mixed-poisson_common":  # column 0 of x: the category under a random code
            codes = np.array(dist.params["codes"] if "codes" in dist.params else dist.params["x"]["codes"])
            assert sorted(codes[:, 0]) == list(range(len(codes)))


# ---------------------------------------------------------------------------
# Flows


@pytest.mark.parametrize("name", split_families("flow"))
def test_flow_mi_is_the_base_mi(name):
    fam = get_family(name)
    base = get_family(f"multi_{fam.base}-{fam.structure}-base")
    for dx, dy in [(2, 2), (5, 3)]:
        d = fam.draw(dx, dy, np.random.default_rng(dx + dy))
        b = base.draw(dx, dy, np.random.default_rng(dx + dy))
        assert d.mi == b.mi and {k: d.params[k] for k in b.params} == b.params


@pytest.mark.parametrize("name", split_families("flow"))
def test_flow_is_not_undone_by_ranks(name):
    """Per-column ranks of the mapped sample differ from the base's, and the Spearman correlation
    between x and y changes: a copula transform does not map the family back onto its base."""
    dist = get_family(name).draw(3, 3, np.random.default_rng(12))
    x, y = dist.sample(3000, np.random.default_rng(0))
    xb, yb = dist.sampler.base(3000, np.random.default_rng(0))
    assert not np.array_equal(stats.rankdata(x, axis=0), stats.rankdata(xb, axis=0))
    rho = stats.spearmanr(np.hstack([x, y])).statistic[:3, 3:]
    rho_b = stats.spearmanr(np.hstack([xb, yb])).statistic[:3, 3:]
    assert np.max(np.abs(rho - rho_b)) > 0.05


def test_flow_maps_are_bijections():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).normal(size=(500, 4)) * 2
    state = torch.random.get_rng_state()
    f = ZukoMap(np.array([1.0, 2.0, 0.5, 1.5]), np.random.default_rng(1), gain=1.5)
    assert torch.equal(state, torch.random.get_rng_state())  # torch's global generator untouched
    b = f(a)
    err = np.abs(f.inverse(b) - a)
    # Invertible; the round trip is exact to rounding except where a spline is nearly flat (its
    # inverse amplifies float64 rounding there).
    assert b.dtype == np.float64 and np.median(err) < 1e-11 and err.max() < 1e-3
    assert not np.allclose(b, a / f.scale)  # not the identity
    # Interval exchange: a measure-preserving rearrangement of [-h s, h s], identity outside.
    ie, ks = random_interval_exchange(np.array([1.0, 3.0]), 2.0, np.random.default_rng(3))
    assert isinstance(ie, IntervalExchange) and all(2 <= k <= 6 for k in ks)
    u = np.column_stack([np.linspace(-2, 2, 100001)[:-1], np.linspace(-6, 6, 100001)[:-1]]) + 1e-6
    v = ie(u)
    for j in range(2):
        assert len(np.unique(np.round(v[:, j], 9))) == len(u)  # injective on the grid
        assert np.max(np.abs(np.sort(v[:, j]) - np.sort(u[:, j]))) < 1e-3 * (j * 2 + 1)  # onto the same interval
        assert np.any(np.diff(v[:, j]) < 0)  # not monotone
    out = np.array([[-7.0, 50.0], [9.0, -100.0]])
    assert np.array_equal(ie(out), out)


# ---------------------------------------------------------------------------
# Every new family


@pytest.mark.parametrize("name", MC_FAMILIES)
def test_monte_carlo_se_is_recorded_and_small(name):
    fam = get_family(name)
    for seed, d in enumerate((1, 8, 32)):
        dist = fam.draw(d, d, np.random.default_rng(seed))
        p = dist.params
        assert 0 <= p["mi_se"] <= TARGET_SE and p["mi_rows"] > 0 and dist.mi == max(0.0, p["mi_mc_estimate"])


@pytest.mark.parametrize("name", NEW_FAMILIES)
def test_new_family_is_deterministic_json_ready_and_respects_min_dim(name):
    fam = get_family(name)
    lo = min_dim_of(fam)
    if lo > 1:
        with pytest.raises(ValueError, match="needs"):
            fam.draw(lo - 1, lo + 1, np.random.default_rng(0))
    for dx, dy in [(lo, lo), (lo + 2, lo + 1)]:
        a, b = fam.draw(dx, dy, np.random.default_rng(9)), fam.draw(dx, dy, np.random.default_rng(9))
        assert a.mi == b.mi and a.params == b.params and a.family == name
        assert json.loads(json.dumps(a.params, allow_nan=False)) == a.params
        xa, ya = a.sample(64, np.random.default_rng(4))
        xb, yb = b.sample(64, np.random.default_rng(4))
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
        assert xa.shape == (64, dx) and ya.shape == (64, dy) and np.isfinite(xa).all() and np.isfinite(ya).all()
        assert np.isfinite(a.mi) and a.mi >= 0
