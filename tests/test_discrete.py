"""Categorical columns: the default rule and explicit specs, the label-free recoding, MIST's
features, the `discrete=` argument of the estimators (base plumbing, KSG, MIST) and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import estimators
from estimators.base import Estimate, Estimator, _original_index, _renumber
from estimators.cli import _discrete
from estimators.discrete import MAX_LEVELS, categorical_columns, recode_categorical
from estimators.mist.features import FeatureConfig, dataset_features

torch.set_num_threads(1)


def _relabel(col: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The column with its categories mapped by a random bijection onto other codes, in an order
    that is neither the old one nor its reverse (so that it is no monotone map: >= 3 categories)."""
    levels = np.unique(col)
    codes = np.arange(len(levels)) * 7 - 5
    while True:
        targets = rng.permutation(codes)
        if not (np.all(np.diff(targets) > 0) or np.all(np.diff(targets) < 0)):
            return targets[np.searchsorted(levels, col)].astype(float)


def _mixed(n: int = 300, seed: int = 0):
    """x: a 4-level categorical column (unequal frequencies) and a continuous one; y: a continuous
    column that depends on the category and a 3-level categorical column that depends on x."""
    rng = np.random.default_rng(seed)
    cat = rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1]).astype(float)
    cont = rng.standard_normal(n)
    effect = np.array([0.3, -1.2, 1.5, 0.1])[cat.astype(int)]
    y0 = effect + 0.5 * cont + rng.standard_normal(n)
    y1 = np.digitize(cont + rng.standard_normal(n), [-0.5, 0.8]).astype(float)
    return np.c_[cat, cont], np.c_[y0, y1]


# -- which columns are categorical ----------------------------------------------------


def test_auto_rule_takes_integer_columns_with_few_levels():
    rng = np.random.default_rng(0)
    n = 100
    few = rng.integers(0, 3, n).astype(float)  # 3 levels: categorical
    cont = rng.standard_normal(n)  # not integer
    many = rng.integers(0, 40, n).astype(float)  # > MAX_LEVELS levels: ordinal
    at_max = np.arange(n) % MAX_LEVELS  # exactly MAX_LEVELS levels: categorical
    const = np.full(n, 2.0)  # one level: not categorical
    x = np.c_[few, cont, many, at_max, const]
    y = np.c_[cont, few + 10]
    assert categorical_columns(x, y) == ([0, 3], [1])
    assert categorical_columns(x, y, None) == ([0, 3], [1])
    # The n // 2 limit: 16 levels need at least 32 rows.
    for rows, want in ((31, []), (32, [0])):
        col = (np.arange(rows) % 16).astype(float)[:, None]
        assert categorical_columns(col, col)[0] == want, rows
    # Two levels need four rows.
    assert categorical_columns(np.array([[0.0], [1.0], [0.0]]), np.zeros((3, 1)))[0] == []
    assert categorical_columns(np.array([[0.0], [1.0], [0.0], [1.0]]), np.zeros((4, 1)))[0] == [0]


def test_explicit_specs():
    x, y = np.zeros((10, 3)), np.zeros((10, 2))
    assert categorical_columns(x, y, True) == ([0, 1, 2], [0, 1])
    assert categorical_columns(x, y, False) == ([], [])
    assert categorical_columns(x, y, ([2, 0], False)) == ([0, 2], [])
    assert categorical_columns(x, y, (True, [-1])) == ([0, 1, 2], [1])
    assert categorical_columns(x, y, [[], [np.int64(0)]]) == ([], [0])


@pytest.mark.parametrize(
    "spec, message",
    [
        ("yes", "discrete must be 'auto', True, False or a pair"),
        (([0],), "discrete must be 'auto', True, False or a pair"),
        (([0], [], []), "discrete must be 'auto', True, False or a pair"),
        (3, "discrete must be 'auto', True, False or a pair"),
        ((0, []), "discrete columns of x must be a bool or a list of column indices, got 0"),
        (([], "0"), "discrete columns of y must be a bool or a list of column indices"),
        (([1.0], []), "discrete columns of x must be integer indices, got 1.0"),
        (([True], []), "discrete columns of x must be integer indices, got True"),
        (([3], []), "discrete column 3 of x is out of range: x has 3 columns"),
        (([], [-3]), "discrete column -3 of y is out of range: y has 2 columns"),
        (([0, -3], []), r"discrete columns of x repeat an index: \[0, -3\]"),
    ],
)
def test_bad_specs_raise_naming_the_problem(spec, message):
    with pytest.raises(ValueError, match=message):
        categorical_columns(np.zeros((10, 3)), np.zeros((10, 2)), spec)


# -- the recoding ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recoding_ignores_the_labels(seed):
    x, y = _mixed(seed=seed)
    rng = np.random.default_rng(100 + seed)
    x2, y2 = x.copy(), y.copy()
    x2[:, 0] = _relabel(x[:, 0], rng)
    y2[:, 1] = _relabel(y[:, 1], rng)
    assert not np.array_equal(x2, x) and not np.array_equal(y2, y)
    rx, ry = recode_categorical(x, y, [0], [1])
    rx2, ry2 = recode_categorical(x2, y2, [0], [1])
    assert rx.tobytes() == rx2.tobytes() and ry.tobytes() == ry2.tobytes()
    # Only the categorical columns change, to codes 0..K-1 that keep the categories apart.
    assert np.array_equal(rx[:, 1], x[:, 1]) and np.array_equal(ry[:, 0], y[:, 0])
    assert set(rx[:, 0]) == {0.0, 1.0, 2.0, 3.0} and set(ry[:, 1]) == {0.0, 1.0, 2.0}
    assert len(np.unique(np.c_[x[:, 0], rx[:, 0]], axis=0)) == 4  # one to one
    # Exchanging x and y exchanges the result.
    sy, sx = recode_categorical(y, x, [1], [0])
    assert sx.tobytes() == rx.tobytes() and sy.tobytes() == ry.tobytes()


def test_recoding_orders_categories_along_the_partner():
    """The order follows where each category's rows sit in y, not its label."""
    rng = np.random.default_rng(5)
    cat = rng.choice(3, size=400, p=[0.5, 0.3, 0.2]).astype(float)
    y = (np.array([2.0, -3.0, 0.0])[cat.astype(int)] + 0.3 * rng.standard_normal(400))[:, None]
    rx, _ = recode_categorical(cat[:, None], y, [0], [])
    means = [y[rx[:, 0] == k, 0].mean() for k in range(3)]
    assert means == sorted(means) or means == sorted(means, reverse=True)
    assert not np.array_equal(rx[:, 0], cat)  # label order (0, 1, 2) is not monotone in y here


def test_no_categorical_columns_leave_the_data_alone():
    x, y = _mixed()
    rx, ry = recode_categorical(x, y, [], [])
    assert rx is x and ry is y


# -- MIST's features ----------------------------------------------------------------------


def test_features_with_recoding_are_invariant_to_relabelling():
    x, y = _mixed(n=200, seed=3)
    rng = np.random.default_rng(4)
    x2, y2 = x.copy(), y.copy()
    x2[:, 0] = _relabel(x[:, 0], rng)
    y2[:, 1] = _relabel(y[:, 1], rng)
    cfg = FeatureConfig(discrete_recode=True, max_rows=64, pair_stats=True, raw_stats=True, align_stats=True)
    for spec in ("auto", ([0], [1])):
        tok, ctx, g = dataset_features(x, y, cfg, discrete=spec)
        tok2, ctx2, g2 = dataset_features(x2, y2, cfg, discrete=spec)
        assert tok.tobytes() == tok2.tobytes() and ctx.tobytes() == ctx2.tobytes() and g == g2, spec
    # Without the recoding (or with no categorical column named) the labels do matter.
    for plain, spec in ((FeatureConfig(max_rows=64), "auto"), (cfg, False)):
        assert not np.array_equal(
            dataset_features(x, y, plain, discrete=spec)[1], dataset_features(x2, y2, plain, discrete=spec)[1]
        )


# -- the base class: plumbing -----------------------------------------------------------


class _Recorder(Estimator):
    """Records the columns the base hands over and reports them in info, as MIST does."""

    name = "recorder_test_only"
    handles_discrete = True

    def __init__(self) -> None:
        super().__init__()
        self.calls: list = []

    def _estimate(self, x, y, discrete=None):
        return self._estimate_batch([(x, y)], None if discrete is None else [discrete])[0]

    def _estimate_batch(self, datasets, discrete=None):
        self.calls.append(discrete)
        cols = discrete or [categorical_columns(x, y) for x, y in datasets]
        return [
            Estimate(mi=float(x.shape[1] + y.shape[1]), info={"categorical_x": c[0], "categorical_y": c[1]})
            for (x, y), c in zip(datasets, cols)
        ]


def _with_constant_columns():
    """x: [constant, continuous, categorical, categorical]; y: [categorical, constant, continuous]."""
    rng = np.random.default_rng(0)
    n = 60
    cat = rng.integers(0, 3, n).astype(float)
    cont = rng.standard_normal((n, 2))
    x = np.c_[np.ones(n), cont[:, 0], cat, (cat + 1) % 3]
    y = np.c_[cat, np.full(n, 5.0), cont[:, 1]]
    return x, y


def test_renumbering_around_dropped_constant_columns():
    dropped = {"x": [0, 3], "y": [1]}
    assert _renumber(([1, 2, 3, 4], [0, 2]), dropped) == ([0, 1, 2], [0, 1])
    for j in range(5):
        assert _original_index(j, [0, 3]) == [1, 2, 4, 5, 6][j]


def test_explicit_columns_are_renumbered_after_constant_columns_are_dropped():
    x, y = _with_constant_columns()
    est = _Recorder()
    assert est.has_batch_path  # overrides _estimate_batch: the derived flag still holds
    # x's 0 is constant (dropped), so x's 2 and 3 become 1 and 2; y's 1 is constant, y's 0 stays.
    out = est.estimate(x, y, discrete=([0, 2, -1], [0, 1]))
    assert est.calls[-1] == [([1, 2], [0])]
    assert out.info["categorical_x"] == [2, 3] and out.info["categorical_y"] == [0]  # the caller's numbering
    assert out.info["dropped_constant_columns"] == {"x": [0], "y": [1]}
    batch = est.estimate_batch([(x, y), (x[:, 1:], y[:, [0, 2]])], discrete=(True, [0]))
    assert est.calls[-1] == [([0, 1, 2], [0]), ([0, 1, 2], [0])]
    assert batch[0].info["categorical_x"] == [1, 2, 3] and batch[1].info["categorical_x"] == [0, 1, 2]
    # "auto": no columns passed (the method applies the default rule), reported in the caller's numbering.
    out = est.estimate(x, y)
    assert est.calls[-1] is None
    assert out.info["categorical_x"] == [2, 3] and out.info["categorical_y"] == [0]
    est.estimate_batch([(x, y)], discrete="auto")
    assert est.calls[-1] is None


def test_bad_spec_in_a_batch_names_the_dataset():
    x, y = _with_constant_columns()
    with pytest.raises(ValueError, match=r"dataset 1: discrete column 3 of x is out of range"):
        _Recorder().estimate_batch([(x, y), (x[:, :3], y)], discrete=([3], []))
    with pytest.raises(ValueError, match="discrete must be 'auto'"):
        _Recorder().estimate(x, y, discrete="none")


def test_ksg_refuses_explicit_categorical_columns_and_is_unchanged_by_auto():
    x, y = _with_constant_columns()
    ksg = estimators.get("ksg")
    for spec in (True, ([2], False), (False, [0])):
        with pytest.raises(ValueError, match="ksg reads every column as numbers.*mist or mist_qr"):
            ksg.estimate(x, y, discrete=spec)
    with pytest.raises(ValueError, match="dataset 0: ksg reads every column as numbers"):
        ksg.estimate_batch([(x, y)], discrete=True)
    # "auto" (these integer columns would be categorical under it), None and a spec naming no
    # column give exactly what the method gives on the arrays.
    want = ksg._estimate(x[:, 1:], y[:, [0, 2]]).mi
    for spec in ("auto", None, False, ([], [])):
        assert ksg.estimate(x, y, discrete=spec).mi == want, spec
        assert ksg.estimate_batch([(x, y)], discrete=spec)[0].mi == want, spec
    assert ksg.estimate(x, y).mi == want and "categorical_x" not in ksg.estimate(x, y).info


def test_a_bad_spec_is_an_error_even_for_estimators_that_ignore_auto():
    x, y = _with_constant_columns()
    with pytest.raises(ValueError, match="discrete column 9 of y is out of range"):
        estimators.get("gaussian").estimate(x, y, discrete=([], [9]))


# -- MIST ------------------------------------------------------------------------------


def _categorical_pair(n: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.choice(3, size=n, p=[0.5, 0.3, 0.2]).astype(float)
    return x[:, None], (x + rng.standard_normal(n))[:, None]


def test_weights_without_recoding_refuse_explicit_categorical_columns_and_keep_auto(plain_weights):
    x, y = _categorical_pair()
    for kind in ("mist", "mist_qr"):
        est = estimators.get(kind, weights=str(plain_weights[kind]))
        assert not est.features.discrete_recode  # the test is about weights without the recoding
        with pytest.raises(ValueError, match=f"{kind}: the weights .* trained without categorical recoding"):
            est.estimate(x, y, discrete=([0], []))
        with pytest.raises(ValueError, match="dataset 0: .*trained without categorical recoding"):
            est.estimate_batch([(x, y)], discrete=True)
        with pytest.raises(ValueError, match="trained without categorical recoding"):
            est._estimate_batch([(x, y)], discrete=[([0], [])])  # direct calls refuse too
        plain = est.estimate(x, y)
        assert plain.ok and "categorical_x" not in plain.info
        # Without discrete_recode the features read no spec: the same inputs as before the argument.
        tok, ctx, _ = dataset_features(x, y, est.features)
        tok2, ctx2, _ = dataset_features(x, y, est.features, discrete=([0], []))
        assert tok.tobytes() == tok2.tobytes() and ctx.tobytes() == ctx2.tobytes()
        for spec in ("auto", None, False):
            assert est.estimate(x, y, discrete=spec).mi == plain.mi, (kind, spec)
        assert est.estimate_batch([(x, y)])[0].mi == pytest.approx(plain.mi, abs=1e-6)


@pytest.mark.parametrize("kind", ["mist", "mist_qr"])
def test_shipped_weights_ignore_relabelled_categories(kind):
    """x uniform on {0, 1, 2}, y = x + N(0, 1): relabelling x's categories moves the shipped weights'
    estimate by at most 0.02 nats (by the default rule and named explicitly), interval included."""
    est = estimators.get(kind)
    assert est.features.discrete_recode
    rng = np.random.default_rng(7)
    for seed in range(5):
        x, y = _categorical_pair(1000, seed)
        for spec in ("auto", ([0], [])):
            a = est.estimate(x, y, discrete=spec)
            for _ in range(2):
                b = est.estimate(_relabel(x[:, 0], rng)[:, None], y, discrete=spec)
                assert abs(a.mi - b.mi) <= 0.02, (seed, spec, a.mi, b.mi)
                if kind == "mist_qr":
                    assert abs(a.lower - b.lower) <= 0.02 and abs(a.upper - b.upper) <= 0.02
            assert a.info["categorical_x"] == [0]


@pytest.fixture(scope="module")
def plain_weights(tmp_path_factory):
    """Tiny MIST and MIST_QR trained without categorical recoding."""
    from estimators.mist.training import train

    out = {}
    for kind in ("mist", "mist_qr"):
        path = tmp_path_factory.mktemp("plain") / f"{kind}.safetensors"
        params = {**_TINY_RECODE, "features": {}, "quantile": kind == "mist_qr", "calibrate": False}
        train(params, path, path.with_suffix(".csv"))
        out[kind] = path
    return out


_TINY_RECODE = {
    "max_steps": 2,
    "max_minutes": 5,
    "val_every": 2,
    "batch_size": 8,
    "workers": 0,
    "seed": 3,
    "replay_pool": 0,
    "data": {"val_size": 8, "n": [10, 40], "d": [2, 4]},
    "model": {"width": 16, "heads": 2},
    "features": {"discrete_recode": True},
}


@pytest.fixture(scope="module")
def recode_weights(tmp_path_factory):
    """A tiny MIST trained with categorical recoding (a few steps: its accuracy is beside the point)."""
    from estimators.mist.training import train

    path = tmp_path_factory.mktemp("recode") / "mist.safetensors"
    card = train(_TINY_RECODE, path, path.with_suffix(".csv"))
    assert card["features"]["discrete_recode"] is True
    return path


def test_weights_with_recoding_ignore_the_labels_and_report_the_columns(recode_weights):
    est = estimators.get("mist", weights=str(recode_weights))
    assert est.features.discrete_recode and est.handles_discrete
    x, y = _categorical_pair()
    rng = np.random.default_rng(1)
    for _ in range(3):
        x2 = _relabel(x[:, 0], rng)[:, None]
        for spec in ("auto", ([0], []), (True, False)):
            a, b = est.estimate(x, y, discrete=spec), est.estimate(x2, y, discrete=spec)
            assert abs(a.mi - b.mi) <= 0.02 and a.mi == b.mi, (spec, a.mi, b.mi)
            assert a.info["categorical_x"] == [0] and a.info["categorical_y"] == [], spec
    # Naming no column reads the codes as numbers: then the labels matter.
    plain = est.estimate(x, y, discrete=False)
    assert plain.info["categorical_x"] == [] and plain.mi != est.estimate(x2, y, discrete=False).mi
    # Twenty levels are beyond the default rule: named explicitly they are recoded, by default not.
    many = rng.integers(0, 20, size=(len(y), 1)).astype(float)
    wide = (many[:, 0] % 5 + rng.standard_normal(len(y)))[:, None]
    many2 = _relabel(many[:, 0], rng)[:, None]
    assert est.estimate(many, wide).info["categorical_x"] == []
    assert est.estimate(many, wide).mi != est.estimate(many2, wide).mi
    named = est.estimate(many, wide, discrete=([0], []))
    assert named.info["categorical_x"] == [0] and named.mi == est.estimate(many2, wide, discrete=([0], [])).mi
    # A constant column before the categorical one: info keeps the caller's numbering, the value is unchanged.
    xc = np.c_[np.full(len(x), 3.0), x]
    out = est.estimate(xc, y, discrete=([1], []))
    assert out.info["categorical_x"] == [1] and out.mi == est.estimate(x, y).mi
    batch = est.estimate_batch([(xc, y), (x2, y)], discrete=([-1], []))
    assert [e.info["categorical_x"] for e in batch] == [[1], [0]]
    assert batch[0].mi == pytest.approx(batch[1].mi, abs=1e-6)


# -- CLI ---------------------------------------------------------------------------------


def _run(*args):
    return subprocess.run([sys.executable, "-m", "estimators.cli", *args], capture_output=True, text=True, timeout=300)


def _csv(tmp_path):
    x, y = _categorical_pair()
    rng = np.random.default_rng(2)
    data = np.c_[x, rng.standard_normal(len(x)), y]
    np.savetxt(tmp_path / "d.csv", data, delimiter=",", header="group,noise,score", comments="")
    return tmp_path / "d.csv"


def test_cli_discrete_maps_file_columns_to_x_and_y_positions():
    names = ["a", "b", "c", "d"]
    assert _discrete("auto", names, 4, [0, 1], [3]) == "auto"
    assert _discrete("none", names, 4, [0, 1], [3]) == (False, False)
    assert _discrete("b", names, 4, [0, 1], [3]) == ([1], [])
    assert _discrete("d,0", names, 4, [0, 1], [3]) == ([0], [0])
    assert _discrete("-1", None, 4, [0, 1], [-1]) == ([], [0])
    with pytest.raises(ValueError, match=r"--discrete: column 'c' \(2\) is in neither --x nor --y"):
        _discrete("c", names, 4, [0, 1], [3])
    with pytest.raises(ValueError, match="--discrete: unknown column 'zz'"):
        _discrete("zz", names, 4, [0, 1], [3])


def test_cli_discrete_flag(tmp_path, recode_weights):
    path = str(_csv(tmp_path))
    r = _run(path, "--x", "group", "--y", "score", "--discrete", "group")
    assert r.returncode == 2 and "ksg reads every column as numbers" in r.stderr, r.stderr
    r = _run(path, "--x", "group", "--y", "score", "--discrete", "noise")
    assert r.returncode == 2 and "column 'noise' (1) is in neither --x nor --y" in r.stderr, r.stderr
    default = _run(path, "--x", "group", "--y", "score", "--json")
    none = _run(path, "--x", "group", "--y", "score", "--discrete", "none", "--json")
    assert default.returncode == none.returncode == 0, (default.stderr, none.stderr)
    assert json.loads(default.stdout)["mi"] == json.loads(none.stdout)["mi"]
    weights = f"weights={recode_weights}"
    # File column 0 ("group") is x's second column here; "none" names no column.
    for flag, expected in (("0", [1]), ("none", [])):
        args = ("--x", "noise,group", "--y", "score", "--estimator", "mist", "--param", weights)
        r = _run(path, *args, "--discrete", flag, "--json")
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)["info"]
        assert info["categorical_x"] == expected and info["categorical_y"] == [], flag
