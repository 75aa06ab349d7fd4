"""MIST as a differentiable torch module (estimators.mist.module, estimators.mist.torch_features)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import estimators
from estimators.discrete import categorical_columns
from estimators.mist import torch_features
from estimators.mist.features import KNN_STATS, dataset_features


@pytest.fixture(scope="module")
def mist():
    return estimators.get("mist")


@pytest.fixture(scope="module")
def mist_qr():
    return estimators.get("mist_qr")


def _datasets():
    """Varied inputs: every feature path (ties, categories, n <= raw_max_n and n > max_rows, dx != dy)."""
    rng = np.random.default_rng(7)
    out = []
    for n, dx, dy in [(10, 1, 1), (40, 3, 2), (100, 5, 5), (300, 2, 7), (500, 6, 6)]:
        x = rng.normal(size=(n, dx))
        out.append((x, x[:, :1] ** 2 + rng.normal(size=(n, dy))))
    x = rng.integers(0, 4, size=(200, 2)).astype(float)  # categorical x
    out.append((x, x[:, :1] + rng.normal(size=(200, 1))))
    x = np.round(rng.normal(size=(150, 3)), 1)  # ties in continuous columns
    out.append((x, np.round(x + rng.normal(size=(150, 3)), 1)))
    x = np.c_[rng.normal(size=(60, 2)), np.ones(60)]  # a constant column
    out.append((x, x[:, :2] @ rng.normal(size=(2, 2)) + rng.normal(size=(60, 2))))
    return out


def test_hard_ranks_match_estimate(mist, mist_qr):
    """At temperature 0 the module is `estimate()` on the same weights (up to the kNN rounding coin,
    which the module replaces by its expectation)."""
    for est in (mist, mist_qr):
        mod = est.module(temperature=0.0)
        gaps = []
        for x, y in _datasets():
            got = mod(torch.from_numpy(x), torch.from_numpy(y))
            gaps.append(abs(float(got[0] if isinstance(got, tuple) else got) - est.estimate(x, y).mi))
        # The coin weighs most at n = 10 (a flip moves a count by a tenth of the rows) and on categorical
        # data, where many rows share one distance and so one coin: there numpy's draw and the
        # expectation part most.
        assert np.median(gaps) < 0.005 and max(gaps) < 0.1, (est.name, np.round(gaps, 4))


def test_torch_features_equal_numpy_features(mist):
    cfg = mist.features
    knn = slice(cfg._knn_at, cfg._knn_at + KNN_STATS)
    for x, y in _datasets():
        keep_x, keep_y = ((a != a[0]).any(0) for a in (x, y))
        x, y = x[:, keep_x], y[:, keep_y]
        cols = categorical_columns(x, y)
        tok, ctx, g = dataset_features(x, y, cfg, discrete=cols)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        t_tok, t_ctx, t_g = torch_features.dataset_features(tx, ty, cfg, 0.0, cols, knn_float32=True)
        assert np.allclose(t_tok.numpy(), tok, atol=1e-5)
        assert np.allclose(t_ctx.numpy(), ctx, atol=1e-5)
        assert abs(float(t_g) - g) < 1e-6
        # The module's own kNN statistics: the expectation over numpy's float32 coin, near its draw.
        e_ctx = torch_features.dataset_features(tx, ty, cfg, 0.0, cols)[1].numpy()
        assert np.allclose(e_ctx[knn], ctx[knn], atol=0.1)  # far apart only where many rows tie (one coin)
        rest = np.ones(cfg.context_dim, bool)
        rest[knn] = False
        assert np.array_equal(e_ctx[rest], t_ctx.numpy()[rest])


@pytest.mark.parametrize("name", ["mist", "mist_qr"])
def test_gradcheck_float64(name):
    mod = estimators.get(name).module(clip=False).double()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(12, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    y = (x.detach()[:, :1] ** 2 + 0.5 * torch.randn(12, 3, generator=gen, dtype=torch.float64)).requires_grad_(True)
    fn = (lambda a, b: mod(a, b)[1]) if name == "mist_qr" else mod
    assert torch.autograd.gradcheck(fn, (x, y), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_gradcheck_can_fail():
    """The check above has teeth: a module whose backward is wrong fails it."""

    class Wrong(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a.sum()

        @staticmethod
        def backward(ctx, g):
            return 2 * g * torch.ones(3, dtype=torch.float64)

    from torch.autograd.gradcheck import GradcheckError

    with pytest.raises(GradcheckError):
        torch.autograd.gradcheck(Wrong.apply, (torch.randn(3, dtype=torch.float64, requires_grad=True),))


@pytest.mark.parametrize(
    "label",
    ["ties", "n10", "duplicated rows", "constant column", "categorical x"],
)
def test_gradients_finite(mist, label):
    gen = torch.Generator().manual_seed(1)
    f64 = dict(generator=gen, dtype=torch.float64)
    x, y = {
        "ties": (torch.round(torch.randn(40, 3, **f64) * 2) / 4, torch.round(torch.randn(40, 2, **f64) * 2) / 4),
        "n10": (torch.randn(10, 5, **f64), torch.randn(10, 5, **f64)),
        "duplicated rows": (torch.randn(20, 2, **f64).repeat(2, 1), torch.randn(20, 2, **f64).repeat(2, 1)),
        "constant column": (torch.cat([torch.randn(30, 1, **f64), torch.ones(30, 1, dtype=torch.float64)], 1),) * 2,
        "categorical x": (torch.randint(0, 3, (50, 1), generator=gen).double(), torch.randn(50, 2, **f64)),
    }[label]
    x, y = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    out = mist.module(clip=False)(x, y)
    out.backward()
    assert torch.isfinite(out)
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()
    assert y.grad.abs().sum() > 0  # the gradient does reach the data


def test_batched_dtype_and_device(mist, mist_qr):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, 80, 2, generator=gen)
    y = x + torch.randn(3, 80, 2, generator=gen)
    mod = mist.module()
    batch = mod(x, y)
    assert batch.shape == (3,) and batch.dtype == torch.float32
    for i in range(3):
        assert torch.allclose(batch[i], mod(x[i], y[i]), atol=1e-6)
    single = mod(x[0].double(), y[0].double())
    assert single.dim() == 0 and single.dtype == torch.float64 and single.device == x.device
    med, q = mist_qr.module()(x, y)
    assert med.shape == (3,) and q.shape == (3, len(mist_qr.params["taus"]))
    assert torch.all(q[:, :-1] <= q[:, 1:])  # quantiles never cross
    assert torch.allclose(med, q[:, list(mist_qr.params["taus"]).index(0.5)])


def test_constant_input_is_zero_with_a_graph(mist):
    x = torch.ones(30, 2, requires_grad=True)
    y = torch.randn(30, 1, requires_grad=True)
    out = mist.module(clip=False)(x, y)
    assert out.item() == 0.0
    out.backward()
    assert float(y.grad.abs().sum()) == 0.0


def test_bad_input_is_named(mist):
    mod = mist.module()
    with pytest.raises(TypeError, match="torch.Tensor"):
        mod(np.zeros((20, 1)), torch.zeros(20, 1))
    with pytest.raises(ValueError, match="non-finite"):
        mod(torch.full((20, 1), float("nan")), torch.zeros(20, 1))
    with pytest.raises(ValueError, match="at least"):
        mod(torch.randn(5, 1), torch.randn(5, 1))
    with pytest.raises(ValueError, match="agree"):
        mod(torch.randn(20, 1), torch.randn(21, 1))
    with pytest.raises(ValueError, match="temperature"):
        mist.module(temperature=-1.0)


def test_soft_ranks_close_to_estimate_on_training_families(mist):
    """The default temperature's values stay near `estimate()` (the must-show runs 500 datasets:
    docs/differentiable.md); a few dozen here."""
    from estimators.synthetic import metadataset

    spec = dict(mist.card["training"]["data_spec"], val_seed=4242, val_size=40)
    items = metadataset.validation_set(spec)
    mod = mist.module()
    with torch.no_grad():
        got = np.array([float(mod(torch.from_numpy(d["x"]), torch.from_numpy(d["y"]))) for d in items])
    want = np.array([e.mi for e in mist.estimate_batch([(d["x"], d["y"]) for d in items])])
    assert np.median(np.abs(got - want)) <= 0.02


def test_infomax_small_run_learns_the_subspace():
    """A small InfoMax run: MIST's loss turns a random projection into the true subspace, and the
    true-MI oracle ranks projections correctly."""
    from benchmarks import infomax

    task = infomax.Task(d=20, sigma=0.4, seed=0)
    rng = np.random.default_rng(0)
    orth = np.linalg.qr(np.c_[task.basis, rng.normal(size=(20, 2))])[0][:, 2:]  # orthogonal to span(B)
    mi_star, se = infomax.optimum(task, outer=1000)
    mi_orth, se_orth = infomax.true_mi(task, orth, outer=1000, inner=128)
    assert abs(mi_orth) < 4 * se_orth + 0.02  # independent of y
    assert mi_star > 1.0
    cfg = dict(n=500, mc_outer=500, mc_inner=128, methods={"mist": dict(lr_w=0.1, steps=60, snapshot_every=30)})
    traj = infomax.score(task, infomax.run("mist", task, 7, cfg), mi_star, cfg)
    assert traj["cos_min"].iloc[0] < 0.5
    assert traj["cos_min"].iloc[-1] > 0.95 and traj["share"].iloc[-1] > 0.9


def test_infomax_summary_reads_the_first_snapshot_at_target():
    import pandas as pd

    from benchmarks.infomax import summarise

    traj = pd.DataFrame(
        dict(
            method=["a"] * 4 + ["b"] * 2,
            seed=[0] * 6,
            step=[0, 10, 20, 30, 0, 10],
            seconds=[0.0, 1.0, 2.0, 3.0, 0.0, 0.5],
            cpu_seconds=[0.0, 0.9, 1.8, 2.7, 0.0, 0.4],
            share=[0.1, 0.96, 0.9, 0.97, 0.1, 0.5],
            true_mi=[0.1, 1.9, 1.8, 1.9, 0.1, 1.0],
            cos_min=[0.1, 0.99, 0.98, 0.99, 0.1, 0.5],
            cos_max=[0.2, 1.0, 1.0, 1.0, 0.2, 0.9],
        )
    )
    out = summarise(traj, 0.95).set_index("method")
    assert out.loc["a", "seconds_to_target"] == 1.0 and out.loc["a", "steps_to_target"] == 10
    assert out.loc["a", "cpu_seconds_to_target"] == 0.9
    assert np.isnan(out.loc["b", "seconds_to_target"])  # never reached: no time, not the last one
    assert out.loc["a", "seconds_per_step"] == 0.1


def test_infomax_main_end_to_end(tmp_path):
    """The whole benchmark on a tiny configuration: every output, scored and summarised."""
    import pandas as pd
    import yaml

    from benchmarks import infomax

    cfg = dict(
        d=4,
        sigma=0.4,
        task_seed=0,
        n=60,
        target=0.95,
        mc_outer=100,
        mc_inner=16,
        report_seeds=[0],
        methods={
            "mist": dict(lr_w=0.3, steps=4, snapshot_every=2),
            "mine": dict(lr_w=0.1, lr_critic=0.003, steps=4, snapshot_every=2),
        },
    )
    path = tmp_path / "infomax.yaml"
    path.write_text(yaml.safe_dump(cfg))
    infomax.main(["--config", str(path), "--out", str(tmp_path / "out"), "--no-cost"])
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert sorted(summary["method"]) == ["mine", "mist"]
    assert (summary["cpu_seconds_per_step"] > 0).all() and summary["cos_min"].between(0, 1).all()
    assert (tmp_path / "out" / "curves.png").is_file() and "mist" in (tmp_path / "out" / "summary.md").read_text()
    assert not (tmp_path / "out" / "trajectories.partial.csv").exists()
