"""Families: names, ground truth and distributions against BMI's own tasks."""
import jax.numpy as jnp
import numpy as np
import pytest
from bmi.benchmark.tasks import multinormal as mn
from bmi.benchmark.tasks import student as st
from bmi.benchmark.tasks.wiggly import wiggly_x as bmi_wx, wiggly_y as bmi_wy
from bmi.transforms import half_cube as bmi_half_cube
from scipy import stats

from estimators.synthetic import transforms
from estimators.synthetic.families import (FAMILIES, IMD_FAMILIES, OOMD_FAMILIES, TRAIN_FAMILIES, get_family,
                                 split_families)


def test_family_counts_and_splits():
    assert len(TRAIN_FAMILIES) == 16 and len(IMD_FAMILIES) == 6 and len(OOMD_FAMILIES) == 7
    assert set(IMD_FAMILIES) <= set(TRAIN_FAMILIES)
    assert not set(OOMD_FAMILIES) & set(TRAIN_FAMILIES)
    assert split_families("oomd") == OOMD_FAMILIES


def test_unknown_family_lists_known():
    with pytest.raises(ValueError, match="unknown family 'multi_normal-dense-spiral'.*multi_normal-dense-base"):
        get_family("multi_normal-dense-spiral")
    with pytest.raises(ValueError, match="unknown split"):
        split_families("validation-ish")


def test_transforms_equal_bmi():
    a = np.linspace(-6, 6, 1001)
    assert np.allclose(transforms.half_cube(a), np.asarray(bmi_half_cube(jnp.asarray(a))), atol=1e-5)
    assert np.allclose(transforms.wiggly_x(a), np.asarray(bmi_wx(jnp.asarray(a))), atol=1e-5)
    assert np.allclose(transforms.wiggly_y(a), np.asarray(bmi_wy(jnp.asarray(a))), atol=1e-5)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_samples_finite_with_positive_mi(name):
    rng = np.random.default_rng(0)
    dist = get_family(name).draw(4, 4, rng)
    x, y = dist.sample(200, rng)
    assert x.shape == (200, 4) and y.shape == (200, 4)
    assert np.isfinite(x).all() and np.isfinite(y).all()
    assert np.isfinite(dist.mi) and dist.mi >= 0


def test_ground_truth_matches_bmi_for_same_parameters():
    rng = np.random.default_rng(3)
    d = get_family("multi_normal-lvm-base").draw(6, 6, rng)
    p = d.params
    task = mn.task_multinormal_lvm(6, 6, p["n_interacting"], p["alpha"], p["lambd"], p["beta"], p["eta"])
    assert d.mi == pytest.approx(task.mutual_information, abs=1e-12)
    d = get_family("multi_student-sparse-asinh").draw(5, 5, rng)
    task = st.task_student_sparse(5, 5, d.params["df"], d.params["n_interacting"], d.params["strength"])
    assert d.mi == pytest.approx(task.mutual_information, abs=1e-12)


def test_additive_noise_mi_formula():
    rng = np.random.default_rng(0)
    d = get_family("multi_additive_noise-base").draw(3, 3, rng)
    f = lambda e: e - np.log(2 * e) if e <= 0.5 else 1 / (4 * e)  # noqa: E731
    from bmi.samplers import AdditiveUniformSampler as bmi_additive

    assert d.mi == pytest.approx(sum(f(e) for e in d.params["epsilon"]), abs=1e-12)
    bmi_mi = sum(float(bmi_additive.mutual_information_function(e)) for e in d.params["epsilon"])
    assert d.mi == pytest.approx(bmi_mi, abs=1e-6)  # BMI evaluates it in float32
    with pytest.raises(ValueError, match="dx == dy"):
        get_family("multi_additive_noise-base").draw(2, 3, rng)


@pytest.mark.parametrize("structure,maker", [("dense", mn.task_multinormal_dense), ("2pair", mn.task_multinormal_2pair)])
def test_normal_samples_match_bmi_distribution(structure, maker):
    rng = np.random.default_rng(5)
    dist = get_family(f"multi_normal-{structure}-base").draw(3, 3, rng)
    task = maker(3, 3, **dist.params)
    ours = np.hstack(dist.sample(20000, rng))
    theirs = np.hstack([np.asarray(a) for a in task.sample(20000, seed=0)])
    assert np.allclose(np.cov(ours.T), np.cov(theirs.T), atol=0.06)


def test_student_samples_match_bmi_distribution():
    rng = np.random.default_rng(2)
    dist = get_family("multi_student-dense-base").draw(2, 2, rng)
    task = st.task_student_dense(2, 2, dist.params["df"], dist.params["off_diag"])
    ours = np.hstack(dist.sample(20000, rng))
    theirs = np.hstack([np.asarray(a) for a in task.sample(20000, seed=1)])
    for j in range(4):  # marginals: two-sample KS test
        assert stats.ks_2samp(ours[:, j], theirs[:, j]).pvalue > 1e-3
    # Dependence: Spearman correlations agree.
    assert np.allclose(stats.spearmanr(ours).statistic, stats.spearmanr(theirs).statistic, atol=0.04)


def test_transformed_family_is_transform_of_base():
    fam_b, fam_t = get_family("multi_normal-dense-base"), get_family("multi_normal-dense-halfcube")
    xb, yb = fam_b.draw(3, 3, np.random.default_rng(9)).sample(50, np.random.default_rng(1))
    dt = fam_t.draw(3, 3, np.random.default_rng(9))
    xt, yt = dt.sample(50, np.random.default_rng(1))
    assert np.allclose(xt, transforms.half_cube(xb)) and np.allclose(yt, transforms.half_cube(yb))


def test_hard_oomd_split_and_spiral_equals_bmi():
    import jax
    import bmi.transforms._rotate as rt

    from estimators.synthetic.hard_families import spiral

    hard = split_families("hard_oomd")
    assert len(hard) >= 4 and not set(hard) & set(TRAIN_FAMILIES)
    a = np.random.default_rng(1).normal(size=(50, 4))
    theirs = np.asarray(jax.vmap(rt.Spiral(rt.so_generator(4, 1, 2), speed=0.3))(jnp.asarray(a)))
    assert np.allclose(spiral(a, 0.3, 1, 2), theirs, atol=1e-5)


@pytest.mark.parametrize("name", ["hard-spiral-normal_sparse", "hard-rotate_halfcube-normal_sparse",
                                  "hard-coupling-student_sparse", "hard-concat-normal_additive",
                                  "hard-student_lowdf-dense"])
def test_hard_families_sample_and_keep_mi(name):
    rng = np.random.default_rng(4)
    dist = get_family(name).draw(5, 5, rng)
    x, y = dist.sample(400, rng)
    assert x.shape == (400, 5) and np.isfinite(x).all() and np.isfinite(y).all() and dist.mi > 0


def test_hard_transforms_are_not_columnwise_monotone():
    """The point of hard_oomd: a per-column rank transform does not undo the map."""
    from scipy.stats import rankdata

    from estimators.synthetic.hard_families import spiral

    a = np.random.default_rng(0).normal(size=(2000, 3))
    b = spiral(a, 1.0, 0, 1)
    assert not np.array_equal(rankdata(a, axis=0), rankdata(b, axis=0))
    assert np.array_equal(rankdata(a, axis=0), rankdata(transforms.half_cube(a), axis=0))
