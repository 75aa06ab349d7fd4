"""The Bayes-posterior reference: its likelihoods against scipy's densities, and that it uses the data."""

import numpy as np
import pytest
from scipy import stats

from devbench import bayes_oracle as bo
from estimators.synthetic import families as F
from estimators.synthetic import transforms as T


@pytest.mark.parametrize("name", ["halfcube", "asinh", "wigglify"])
@pytest.mark.parametrize("side", ["x", "y"])
def test_inverse_transforms_and_their_jacobians(name, side):
    forward = T.TRANSFORMS[name][0 if side == "x" else 1]
    b = np.linspace(-6, 6, 241) + 0.013  # off zero: half-cube's inverse is not differentiable there
    a = forward(b)
    back, log_jac = bo.inverse_transform(name, a, side)
    assert np.allclose(back, b, rtol=1e-12, atol=1e-12)
    h = 1e-6  # log |db/da| against a central difference of the inverse
    num = (bo.inverse_transform(name, a + h, side)[0] - bo.inverse_transform(name, a - h, side)[0]) / (2 * h)
    assert np.allclose(log_jac, np.log(num), atol=1e-5)


def _bank(base, structure, d, draws=3, seed=0):
    return bo.draw_bank(base, structure, d, d, draws, np.random.default_rng(seed))


def test_raw_likelihoods_are_scipys_densities():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((7, 3)), rng.standard_normal((7, 3))
    z = np.c_[x, y]
    for base in ("multi_normal", "multi_student"):
        bank = _bank(base, "lvm" if base == "multi_normal" else "sparse", 3)
        got = bo.raw_loglik(x, y, "base", bank)
        for m in range(3):
            cov = np.linalg.inv(bank.prec[m])
            dist = (
                stats.multivariate_normal(np.zeros(6), cov)
                if base == "multi_normal"
                else stats.multivariate_t(np.zeros(6), cov, df=bank.df[m])
            )
            assert got[m] == pytest.approx(dist.logpdf(z).sum(), rel=1e-9)
        # a transformed family: the base density at the inverse, times the Jacobian
        tx, ty = T.TRANSFORMS["asinh"]
        moved = bo.raw_loglik(tx(x), ty(y), "asinh", bank)
        assert np.allclose(moved, got + np.log(np.cosh(tx(x))).sum() + np.log(np.cosh(ty(y))).sum(), rtol=1e-9)


def test_additive_noise_likelihood_is_zero_outside_the_band():
    bank = bo.Bank("multi_additive_noise", None, mi=np.zeros(2), eps=np.array([[0.5, 0.5], [0.1, 0.1]]))
    x = np.array([[0.2, 0.4], [0.6, 0.9]])
    y = x + np.array([[0.3, -0.2], [0.0, 0.05]])
    ll = bo.raw_loglik(x, y, "base", bank)
    assert ll[0] == pytest.approx(-2 * 2 * np.log(1.0)) and ll[1] == -np.inf
    assert (bo.raw_loglik(x + 2, y + 2, "base", bank) == -np.inf).all()  # X outside [0, 1]


def test_gaussian_copula_pseudo_likelihood():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((9, 2)), rng.standard_normal((9, 2))
    bank = _bank("multi_normal", "dense", 2)
    n = 9
    z = stats.norm.ppf(np.c_[stats.rankdata(x, axis=0), stats.rankdata(y, axis=0)] / (n + 1))
    got = bo.rank_loglik(x, y, bank)
    for m in range(3):
        want = (
            stats.multivariate_normal(np.zeros(4), np.linalg.inv(bank.prec[m])).logpdf(z).sum()
            - stats.norm.logpdf(z).sum()
        )
        assert got[m] == pytest.approx(want, rel=1e-9)
    # invariant to any increasing map of a column: only the ranks enter
    assert np.allclose(bo.rank_loglik(np.sinh(x) * 3, y**3, bank), got)


def test_posterior_uses_the_data():
    """On data drawn from the prior, the posterior mean beats the prior mean (both from the same bank):
    fails if the likelihood does not weigh the draws by how well they explain the data."""
    fams = ("multi_normal-dense-base", "multi_student-sparse-base")
    banks = bo.draw_banks(fams, 3, 3, 600, seed=0)
    prior_mean = np.mean(np.concatenate([b.mi for b in banks.values()]))
    rng = np.random.default_rng(5)
    err_post, err_prior = {"raw": [], "ranks": []}, []
    for i in range(40):
        dist = F.get_family(fams[i % 2]).draw(3, 3, rng)
        x, y = dist.sample(30, rng)
        for mode in ("raw", "ranks"):
            post, ess = bo.posterior_mean(x, y, fams, banks, mode)
            assert 1 <= ess <= 1200
            err_post[mode].append((post - dist.mi) ** 2)
        err_prior.append((prior_mean - dist.mi) ** 2)
    # Measured: 0.016 (raw) and 0.024 (ranks) of the prior mean's MSE; 0.3 leaves room for the seed,
    # not for a likelihood that ignores the data.
    for mode, err in err_post.items():
        assert np.mean(err) < 0.3 * np.mean(err_prior), mode


def test_a_single_draw_is_its_own_posterior():
    bank = _bank("multi_normal", "sparse", 2, draws=1)
    x, y = np.random.default_rng(3).standard_normal((2, 5, 2))
    assert bo.posterior_mean(x, y, ("multi_normal-sparse-base",), {("multi_normal", "sparse"): bank})[0] == bank.mi[0]
    with pytest.raises(ValueError, match="mode"):
        bo.posterior_mean(x, y, ("multi_normal-sparse-base",), {("multi_normal", "sparse"): bank}, "values")


def test_aligned_columns_do_not_depend_on_the_column_order():
    """With `align`, the posterior is a function of the data, not of how its columns are ordered;
    without it, it reads BMI's alignment (x_i with y_i) and a shuffle changes it."""
    fams = ("multi_normal-sparse-base",)
    rng = np.random.default_rng(6)
    dist = F.get_family(fams[0]).draw(4, 4, rng)
    while dist.params["n_interacting"] > 2:  # a shuffle must be able to break the alignment
        dist = F.get_family(fams[0]).draw(4, 4, rng)
    x, y = dist.sample(25, rng)
    banks = bo.draw_banks(fams, 4, 4, 300, seed=1)
    px, py = [3, 1, 0, 2], [2, 3, 1, 0]
    for mode in ("raw", "ranks"):
        base = bo.posterior_mean(x, y, fams, banks, mode, align=True)
        assert bo.posterior_mean(x[:, px], y[:, py], fams, banks, mode, align=True) == pytest.approx(base, rel=1e-9)
        assert bo.posterior_mean(x[:, px], y[:, py], fams, banks, mode)[0] != pytest.approx(
            bo.posterior_mean(x, y, fams, banks, mode)[0], rel=1e-3
        )
