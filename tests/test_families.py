"""Families: names, ground truth and distributions against BMI's own tasks.

BMI (and jax) are optional here: the library generates its families without them. Tests that compare
with BMI skip when it is not installed (`_bmi()`); the rest, including a run with `bmi` blocked, do not.
"""

import ast
import hashlib
import math
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from estimators.synthetic import gaussian_tasks as gt
from estimators.synthetic import transforms
from estimators.synthetic.families import (
    FAMILIES,
    IMD_FAMILIES,
    OOMD_FAMILIES,
    TRAIN_FAMILIES,
    get_family,
    split_families,
)

REPO = Path(__file__).resolve().parents[1]


def _bmi():
    """BMI's task modules, or skip the test (a BMI-free install)."""
    pytest.importorskip("bmi")
    from bmi.benchmark.tasks import multinormal as mn
    from bmi.benchmark.tasks import student as st

    return mn, st


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
    pytest.importorskip("bmi")
    import jax.numpy as jnp
    from bmi.benchmark.tasks.wiggly import wiggly_x as bmi_wx
    from bmi.benchmark.tasks.wiggly import wiggly_y as bmi_wy
    from bmi.transforms import half_cube as bmi_half_cube

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
    mn, st = _bmi()
    rng = np.random.default_rng(3)
    d = get_family("multi_normal-lvm-base").draw(6, 6, rng)
    p = d.params
    task = mn.task_multinormal_lvm(6, 6, p["n_interacting"], p["alpha"], p["lambd"], p["beta"], p["eta"])
    assert d.mi == task.mutual_information
    d = get_family("multi_student-sparse-asinh").draw(5, 5, rng)
    task = st.task_student_sparse(5, 5, d.params["df"], d.params["n_interacting"], d.params["strength"])
    assert d.mi == task.mutual_information


def test_additive_noise_mi_formula():
    rng = np.random.default_rng(0)
    d = get_family("multi_additive_noise-base").draw(3, 3, rng)
    f = lambda e: e - np.log(2 * e) if e <= 0.5 else 1 / (4 * e)  # noqa: E731
    assert d.mi == pytest.approx(sum(f(e) for e in d.params["epsilon"]), abs=1e-12)
    with pytest.raises(ValueError, match="dx == dy"):
        get_family("multi_additive_noise-base").draw(2, 3, rng)
    pytest.importorskip("bmi")
    from bmi.samplers import AdditiveUniformSampler as bmi_additive

    bmi_mi = sum(float(bmi_additive.mutual_information_function(e)) for e in d.params["epsilon"])
    assert d.mi == pytest.approx(bmi_mi, abs=1e-6)  # BMI evaluates it in float32


@pytest.mark.parametrize("structure", ["dense", "2pair"])
def test_normal_samples_match_bmi_distribution(structure):
    mn, _ = _bmi()
    maker = getattr(mn, f"task_multinormal_{structure}")
    rng = np.random.default_rng(5)
    dist = get_family(f"multi_normal-{structure}-base").draw(3, 3, rng)
    task = maker(3, 3, **dist.params)
    ours = np.hstack(dist.sample(20000, rng))
    theirs = np.hstack([np.asarray(a) for a in task.sample(20000, seed=0)])
    assert np.allclose(np.cov(ours.T), np.cov(theirs.T), atol=0.06)


def test_student_samples_match_bmi_distribution():
    _, st = _bmi()
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
    from estimators.synthetic.hard_families import spiral

    hard = split_families("hard_oomd")
    assert len(hard) >= 4 and not set(hard) & set(TRAIN_FAMILIES)
    pytest.importorskip("bmi")
    import bmi.transforms._rotate as rt
    import jax
    import jax.numpy as jnp

    a = np.random.default_rng(1).normal(size=(50, 4))
    theirs = np.asarray(jax.vmap(rt.Spiral(rt.so_generator(4, 1, 2), speed=0.3))(jnp.asarray(a)))
    assert np.allclose(spiral(a, 0.3, 1, 2), theirs, atol=1e-5)


@pytest.mark.parametrize(
    "name",
    [
        "hard-spiral-normal_sparse",
        "hard-rotate_halfcube-normal_sparse",
        "hard-coupling-student_sparse",
        "hard-concat-normal_additive",
        "hard-student_lowdf-dense",
    ],
)
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


# ---------------------------------------------------------------------------
# gaussian_tasks: BMI 0.1.3's matrices and MI without BMI, equal bit for bit.

_DIMS = [(d, d) for d in range(1, 33)] + [(1, 2), (2, 1), (1, 32), (32, 1), (3, 7), (7, 3), (2, 31), (16, 5), (5, 16)]
_STRENGTHS = (1e-3, 0.1, 1.0, 2.5, 5.0, 20.0)
_DFS = (0.3, 0.5, 1.0, 2.0, 3.7, 10.0, 100.0)


def _grid(kind: str, structure: str):
    """(dx, dy, params) over _DIMS with edge and random parameters; Student cases carry df."""
    rng = np.random.default_rng(zlib.crc32(f"{kind}-{structure}".encode()))
    for i, (dx, dy) in enumerate(_DIMS):
        m = min(dx, dy)
        if structure == "dense":
            cases = [
                {"off_diag": o} for o in (0.0, 1e-12, 0.1, 0.4999999999, 0.5, 0.9, -0.02, float(rng.uniform(0.0, 0.5)))
            ]
        elif structure == "2pair":
            if m < 2:
                continue
            cases = [{"strength": s} for s in (*_STRENGTHS, float(rng.uniform(0.1, 5.0)))]
        elif structure == "sparse":
            cases = [
                {"n_interacting": k, "strength": s}
                for k in sorted({0, 1, m, int(rng.integers(1, m + 1))})
                for s in (*_STRENGTHS, float(rng.uniform(0.1, 5.0)))
            ]
        else:  # lvm: the range edges of paper_families.RANGES and random draws inside them
            weights = [(0.0, 0.1, 0.0, 0.1), (1.0, 3.0, 1.5, 5.0), (0.5, 1.0, 0.0, 0.1), (1.0, 0.1, 0.0, 5.0)]
            weights += [
                (
                    float(rng.uniform(0, 1)),
                    float(rng.uniform(0.1, 3)),
                    float(rng.uniform(0, 1.5)),
                    float(rng.uniform(0.1, 5)),
                )
                for _ in range(2)
            ]
            cases = [
                {"n_interacting": k, "alpha": a, "lambd": lam, "beta": b, "eta": e}
                for k in sorted({0, 1, m})
                for a, lam, b, e in weights
            ]
        for j, p in enumerate(cases):
            if kind == "student":  # every df somewhere, two per case
                p = {**p, "df": _DFS[(i + j) % len(_DFS)]}
                yield dx, dy, p
                p = {**p, "df": float(rng.uniform(0.3, 10.0))}
            yield dx, dy, p


@pytest.mark.parametrize(
    "kind,structure",
    [("normal", s) for s in ("dense", "sparse", "2pair", "lvm")]
    + [("student", s) for s in ("dense", "sparse", "2pair")],
)
def test_gaussian_tasks_equal_bmi_bit_for_bit(kind, structure):
    mn, st = _bmi()
    if kind == "normal":
        bmi_task, attr, ours = getattr(mn, f"task_multinormal_{structure}"), "_covariance", gt.normal_task
    else:
        bmi_task, attr, ours = getattr(st, f"task_student_{structure}"), "_dispersion", gt.student_task
    n, bad, refused = 0, [], 0
    for dx, dy, p in _grid(kind, structure):
        try:
            task = bmi_task(dx, dy, **p)
            theirs_m, theirs_mi = np.asarray(getattr(task.sampler, attr)), float(task.mutual_information)
        except ValueError:  # e.g. a negative off_diag that is not positive-definite at this d: both refuse
            with pytest.raises(ValueError):
                ours(structure, dx, dy, **p)
            refused += 1
            continue
        m, mi = ours(structure, dx, dy, **p)
        n += 1
        if not (type(mi) is float and mi == theirs_mi and m.dtype == theirs_m.dtype and np.array_equal(m, theirs_m)):
            bad.append((dx, dy, p, mi, theirs_mi, float(np.max(np.abs(m - theirs_m)))))
    assert not bad, f"{len(bad)} of {n} differ from BMI, e.g. {bad[:3]}"
    assert n > 150
    if structure == "dense":
        assert refused > 0  # the grid does reach BMI's positive-definiteness check


def _gaussian_base(dist):
    """The GaussianSampler under a family's distribution, or None (transformed: the closure's default)."""
    from estimators.synthetic.families import GaussianSampler

    s = dist.sampler
    if isinstance(s, GaussianSampler):
        return s
    return next((v for v in (getattr(s, "__defaults__", None) or ()) if isinstance(v, GaussianSampler)), None)


@pytest.mark.parametrize(
    "name", sorted(n for n in FAMILIES if n.startswith(("multi_normal", "multi_student", "hard-")))
)
def test_family_ground_truth_and_matrix_equal_bmi(name):
    """Each Gaussian / Student-t family's MI (and matrix) is BMI's task's, exactly, for the drawn parameters."""
    mn, st = _bmi()
    fam = get_family(name)
    for seed, (dx, dy) in enumerate([(2, 2), (1, 3), (5, 2), (8, 8), (32, 32), (3, 17)]):
        if min(dx, dy) < fam.min_dim:
            continue
        d = fam.draw(dx, dy, np.random.default_rng(seed))
        p = dict(d.params)
        if name.startswith(("multi_normal", "multi_student")):
            base, structure = name.split("-")[:2]
            maker = (
                getattr(mn, f"task_multinormal_{structure}")
                if base == "multi_normal"
                else getattr(st, f"task_student_{structure}")
            )
            task = maker(dx, dy, **p)
            g = _gaussian_base(d)
            theirs = task.sampler._covariance if base == "multi_normal" else task.sampler._dispersion
            assert np.array_equal(g.cov, np.asarray(theirs)) and g.df == p.get("df")
        elif name == "hard-student_lowdf-dense":
            task = st.task_student_dense(dx, dy, p["df"], p["off_diag"])
            assert np.array_equal(d.sampler.cov, np.asarray(task.sampler._dispersion))
        elif name == "hard-concat-normal_additive":
            k, g = p["k_noise"], p["gaussian"]
            eps = p["noise"]["epsilon"]
            mi_u = float(sum(e - np.log(2 * e) if e <= 0.5 else 1 / (4 * e) for e in eps))
            task = mn.task_multinormal_sparse(dx - k, dy - k, g["n_interacting"], g["strength"])
            assert d.mi == task.mutual_information + mi_u
            continue
        elif name == "hard-coupling-student_sparse":
            task = st.task_student_sparse(dx, dy, p["df"], p["n_interacting"], p["strength"])
        else:  # spiral, rotate_halfcube: a transformed sparse Gaussian
            task = mn.task_multinormal_sparse(dx, dy, p["n_interacting"], p["strength"])
        assert d.mi == task.mutual_information, (name, dx, dy, p)


# BMI 0.1.3's values for a few tasks (sha256 of the matrix bytes, MI as float.hex), so the pins hold in a
# BMI-free install too. Matrices are elementwise IEEE arithmetic: exact anywhere. MI goes through LAPACK's
# det and may move in the last bits with another BLAS build (as BMI's own would); here it is ==.
_PINNED = [
    ("normal", "dense", 3, 5, {"off_diag": 0.3}, "5d316fce5f67ad4225a5b55ca9d70bf4", "0x1.ef57eb46d3980p-3"),
    (
        "normal",
        "sparse",
        7,
        4,
        {"n_interacting": 3, "strength": 1.7},
        "8a0e6065786084a5d0b7b3072ea9efd0",
        "0x1.344a80ac8f938p+0",
    ),
    ("normal", "2pair", 2, 9, {"strength": 0.4}, "56e3c6c9d00072bab053cfeb0421a070", "0x1.3ab556c5b1c00p-6"),
    (
        "normal",
        "lvm",
        6,
        6,
        {"n_interacting": 2, "alpha": 0.6, "lambd": 2.2, "beta": 1.1, "eta": 0.7},
        "d3729533fa35d871bcc8b5436dcd3578",
        "0x1.05da0c19998e0p+0",
    ),
    (
        "student",
        "dense",
        1,
        1,
        {"df": 0.5, "off_diag": 0.45},
        "df725f4c06b410ee18b576ef71c8b622",
        "0x1.37a96ce4c7518p-1",
    ),
    (
        "student",
        "sparse",
        32,
        32,
        {"df": 3.3, "n_interacting": 32, "strength": 4.9},
        "8805d611c27f746591a6282119f70d45",
        "0x1.4d81e025030f9p+5",
    ),
    (
        "student",
        "2pair",
        5,
        3,
        {"df": 9.0, "strength": 2.0},
        "b203f1970bca319ad1da2dfefaefbfdc",
        "0x1.12cb7ae4617b8p+0",
    ),
]


@pytest.mark.parametrize("kind,structure,dx,dy,p,digest,mi_hex", _PINNED)
def test_gaussian_tasks_pinned_bmi_values(kind, structure, dx, dy, p, digest, mi_hex):
    m, mi = (gt.normal_task if kind == "normal" else gt.student_task)(structure, dx, dy, **p)
    assert hashlib.sha256(m.tobytes()).hexdigest()[:32] == digest
    pinned = float.fromhex(mi_hex)
    assert abs(mi - pinned) <= 4 * math.ulp(pinned), (mi.hex(), mi_hex)


def test_gaussian_tasks_refuse_what_bmi_refuses():
    with pytest.raises(ValueError, match="n_interacting"):
        gt.normal_task("sparse", 2, 3, n_interacting=3, strength=1.0)
    with pytest.raises(ValueError, match="n_interacting"):
        gt.student_task("2pair", 1, 3, 2.0, strength=1.0)
    with pytest.raises(ValueError, match="positive"):
        gt.student_task("dense", 2, 2, 0.0, off_diag=0.1)
    with pytest.raises(ValueError, match="positive-definite"):
        gt.normal_task("dense", 20, 20, off_diag=-0.1)
    with pytest.raises(ValueError, match="Student-t"):
        gt.student_task("lvm", 2, 2, 3.0, n_interacting=1, alpha=0.1, lambd=1.0)
    with pytest.raises(ValueError, match="dimensions"):
        gt.normal_task("dense", 0, 2, off_diag=0.1)


def test_no_bmi_import_in_the_library():
    found = []
    for f in sorted((REPO / "estimators").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            found += [f"{f.relative_to(REPO)}:{node.lineno}" for n in names if n.split(".")[0] in ("bmi", "jax")]
    assert not found


_FAMILY_RUN = textwrap.dedent("""
    import hashlib, sys
    import numpy as np
    from estimators.synthetic.families import FAMILIES, min_dim_of
    from estimators.synthetic import metadataset

    h = hashlib.sha256()
    for name, fam in sorted(FAMILIES.items()):
        for d in sorted({min_dim_of(fam), 3, 6}):
            rng = np.random.default_rng(d)
            dist = fam.draw(d, d, rng)
            x, y = dist.sample(25, rng)
            assert np.isfinite(dist.mi) and dist.mi >= 0 and np.isfinite(x).all() and np.isfinite(y).all(), name
            h.update(f"{name} {d} {dist.mi.hex()} {dist.params!r}".encode() + x.tobytes() + y.tobytes())
    metadataset.build_shard({"seed": 3, "per_shard": 40, "n": [10, 30], "d": [1, 6], "p_unequal": 0.3}, 0,
                            sys.argv[1])
    h.update(open(sys.argv[1], "rb").read())
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("bmi", "jax") and sys.modules[m] is not None)
    assert not loaded, loaded
    print(h.hexdigest())
""")


def test_every_family_draws_with_bmi_blocked(tmp_path):
    """No BMI, no jax: `import bmi` / `import jax` raise in the child, and every family (and a meta-dataset
    shard) still comes out, the same bytes as in a child where they are not blocked."""
    blocked = "import sys; sys.modules['bmi'] = None; sys.modules['jax'] = None\n"
    out = []
    for tag, prelude in (("blocked", blocked), ("plain", "")):
        r = subprocess.run(
            [sys.executable, "-c", prelude + _FAMILY_RUN, str(tmp_path / f"{tag}.npz")],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        out.append(r.stdout.strip())
    assert len(out[0]) == 64 and out[0] == out[1]
