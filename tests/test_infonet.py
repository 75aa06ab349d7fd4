"""InfoNet: network shape and invariance, bilinear read-out, checkpoints, shipped weights."""

import json
import math

import numpy as np
import pytest
import torch

import estimators
from estimators.checkpoint import CheckpointError, save_checkpoint
from estimators.infonet.adapter import SHIPPED_WEIGHTS, InfoNetEstimator, to_grid
from estimators.infonet.data import MixtureSpec, mixture_mi_mc, rank_to_grid, sample_mixture_params, training_batch
from estimators.infonet.model import InfoNet, bilinear, dv_readout
from estimators.infonet.training import resolve_params, train

TINY = dict(grid=9, width=16, depth=1, n_latents=8, heads=2, n_freq=2)


@pytest.fixture(scope="module")
def shipped():
    return InfoNetEstimator()


def _np_bilinear(table, x, y):
    """Reference: table[i, j] at (-1 + 2i/(G-1), -1 + 2j/(G-1)); axis 0 = x."""
    g = table.shape[0]
    fx, fy = (x + 1) / 2 * (g - 1), (y + 1) / 2 * (g - 1)
    i0 = np.clip(np.floor(fx).astype(int), 0, g - 2)
    j0 = np.clip(np.floor(fy).astype(int), 0, g - 2)
    tx, ty = fx - i0, fy - j0
    return (
        (1 - tx) * (1 - ty) * table[i0, j0]
        + tx * (1 - ty) * table[i0 + 1, j0]
        + (1 - tx) * ty * table[i0, j0 + 1]
        + tx * ty * table[i0 + 1, j0 + 1]
    )


# -- model ---------------------------------------------------------------------------------
@pytest.mark.parametrize("decoder", ["factorised", "grid"])
def test_table_shape_and_permutation_invariance(decoder):
    torch.manual_seed(0)
    net = InfoNet(**TINY, decoder=decoder).eval()
    xy = torch.rand(3, 50, 2) * 2 - 1
    with torch.no_grad():
        t = net(xy)
        t_perm = net(xy[:, torch.randperm(50)])
        t_other = net(torch.rand(3, 50, 2) * 2 - 1)
    assert t.shape == (3, 9, 9)
    torch.testing.assert_close(t, t_perm, atol=1e-5, rtol=1e-5)
    assert (t - t_other).abs().max() > 1e-4  # the table does depend on the data


def test_bilinear_matches_reference_and_axes():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(7, 7))
    x, y = rng.uniform(-1, 1, 200), rng.uniform(-1, 1, 200)
    got = bilinear(torch.tensor(table)[None], torch.tensor(x)[None], torch.tensor(y)[None])[0].numpy()
    np.testing.assert_allclose(got, _np_bilinear(table, x, y), atol=1e-10)
    # exact at the grid nodes, with axis 0 = x and axis 1 = y
    node = (
        torch.tensor([[-1.0 + 2 * 2 / 6]], dtype=torch.float64),
        torch.tensor([[-1.0 + 2 * 5 / 6]], dtype=torch.float64),
    )
    got = bilinear(torch.tensor(table)[None], *node).item()
    assert got == pytest.approx(table[2, 5]) and got != pytest.approx(table[5, 2])
    # a bilinear function is reproduced exactly anywhere
    g = np.linspace(-1, 1, 7)
    gx, gy = np.meshgrid(g, g, indexing="ij")
    f = lambda a, b: 0.3 + 1.2 * a - 0.7 * b + 2.0 * a * b  # noqa: E731
    got = bilinear(torch.tensor(f(gx, gy))[None], torch.tensor(x)[None], torch.tensor(y)[None])[0].numpy()
    np.testing.assert_allclose(got, f(x, y), atol=1e-10)


def test_dv_readout_formula():
    rng = np.random.default_rng(1)
    table = rng.normal(size=(5, 5))
    x, y = rng.uniform(-1, 1, 30), rng.uniform(-1, 1, 30)
    perms = np.stack([rng.permutation(30) for _ in range(3)])
    got = dv_readout(
        torch.tensor(table)[None], torch.tensor(x)[None], torch.tensor(y)[None], torch.tensor(perms)
    ).item()
    joint = _np_bilinear(table, x, y).mean()
    marg = np.concatenate([_np_bilinear(table, x, y[p]) for p in perms])
    assert got == pytest.approx(joint - np.log(np.exp(marg).mean()), abs=1e-10)
    # a constant critic carries no information
    const = dv_readout(
        torch.full((1, 5, 5), 3.0, dtype=torch.float64),
        torch.tensor(x)[None],
        torch.tensor(y)[None],
        torch.tensor(perms),
    ).item()
    assert const == pytest.approx(0.0, abs=1e-12)


# -- data ------------------------------------------------------------------------------------
def test_mixture_stream_and_mc_truth():
    g = torch.Generator().manual_seed(0)
    p = sample_mixture_params(64, MixtureSpec(), g)
    w = p["weights"]
    assert torch.allclose(w.sum(1), torch.ones(64)) and ((w > 0).sum(1) >= 1).all()
    enc, ev = training_batch(4, 100, MixtureSpec(), g, n_eval=60)
    assert enc.shape == (4, 100, 2) and ev.shape == (4, 60, 2)
    assert enc.min() > -1 and enc.max() < 1
    # Monte-Carlo MI of a single Gaussian component equals the analytic value
    rho = 0.8
    chol = torch.tensor([[1.0, 0.0], [rho, math.sqrt(1 - rho**2)]])
    single = {"weights": torch.ones(1, 1), "means": torch.zeros(1, 1, 2), "chol": chol[None, None]}
    mi, se = mixture_mi_mc(single, 40_000, g)
    assert abs(mi[0] - (-0.5 * math.log(1 - rho**2))) < 4 * se[0] + 1e-3


def test_rank_maps_fill_the_grid():
    a = torch.randn(2, 99, 2)
    r = rank_to_grid(a)
    assert r.min().item() == pytest.approx(-0.98) and r.max().item() == pytest.approx(0.98)
    np.testing.assert_allclose(to_grid(a[0].numpy()), r[0].numpy(), atol=1e-6)


# -- checkpoints and training -------------------------------------------------------------------
def test_missing_and_corrupt_checkpoints_raise(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        InfoNetEstimator(weights=tmp_path / "nope.safetensors")
    net = InfoNet(**TINY)
    w = tmp_path / "m.safetensors"
    save_checkpoint(net, w, {"model": "infonet", "architecture": net.arch})
    InfoNetEstimator(weights=w, null_correction=False)  # loads
    data = w.read_bytes()
    w.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CheckpointError, match="SHA-256"):
        InfoNetEstimator(weights=w)
    # card that does not describe the weights
    save_checkpoint(net, w, {"model": "infonet", "architecture": {**net.arch, "width": 32}})
    with pytest.raises(CheckpointError):
        InfoNetEstimator(weights=w)
    save_checkpoint(net, w, {"model": "mist", "architecture": net.arch})
    with pytest.raises(CheckpointError, match="not an InfoNet"):
        InfoNetEstimator(weights=w)


def test_train_writes_loadable_checkpoint(tmp_path):
    w, log = tmp_path / "t.safetensors", tmp_path / "loss.csv"
    card = train(
        {**TINY, "steps": 3, "n_min": 20, "n_max": 40, "batch_size": 2, "log_every": 1, "val_seeds": 1, "null_reps": 1},
        w,
        log,
        device="cpu",
        progress=False,
    )
    assert card["steps"] == 3 and card["architecture"]["grid"] == 9
    saved = json.loads(w.with_suffix(".json").read_text())
    assert {"gauss_mae", "gauss_spearman"} <= set(saved["validation"])
    assert log.read_text().splitlines()[0].startswith("step,")
    assert len(log.read_text().splitlines()) == 4
    x, y = np.arange(30.0), np.arange(30.0) ** 2
    plain = InfoNetEstimator(weights=w, null_correction=False).estimate(x, y).mi
    assert math.isfinite(plain)
    assert math.isfinite(InfoNetEstimator(weights=w, n_splits=2).estimate(x, y).mi)
    # the null-offset table: the corrected estimate is the plain one minus the offset at n = 30
    tab = saved["null_offset"]
    assert tab["n"][0] <= 30 <= tab["n"][-1] and len(tab["mi"]) == len(tab["n"])
    offset = np.interp(np.log(30), np.log(tab["n"]), tab["mi"])
    corrected = InfoNetEstimator(weights=w).estimate(x, y).mi  # corrected by default
    assert corrected == pytest.approx(plain - offset, abs=1e-9)
    # fine-tuning from it counts its steps
    card2 = train(
        {**TINY, "steps": 1, "n_min": 20, "n_max": 40, "batch_size": 2, "val_seeds": 1, "null_reps": 1, "init": str(w)},
        tmp_path / "t2.safetensors",
        tmp_path / "loss2.csv",
        device="cpu",
        progress=False,
    )
    assert card2["total_steps"] == 4 and card2["init"]["sha256"] == saved["sha256"]


def test_null_correction_needs_the_table(tmp_path):
    net = InfoNet(**TINY)
    w = tmp_path / "m.safetensors"
    save_checkpoint(net, w, {"model": "infonet", "architecture": net.arch})
    with pytest.raises(ValueError, match="null_offset"):
        InfoNetEstimator(weights=w)  # the default needs it
    InfoNetEstimator(weights=w, null_correction=False)


def test_training_params_are_checked():
    with pytest.raises(ValueError, match="unknown"):
        resolve_params({"minutes": 1, "lrr": 1})
    with pytest.raises(ValueError, match="budget"):
        resolve_params({})


# -- the estimator with the shipped weights -----------------------------------------------------------
def test_registered_and_amortised(shipped):
    assert "infonet" in estimators.available()
    assert estimators.get("infonet").amortised
    assert shipped.weights == SHIPPED_WEIGHTS


def test_shipped_weights_increase_with_rho(shipped, gaussian_pair):
    rhos = [0.0, 0.4, 0.7, 0.9]  # MI 0, 0.087, 0.337, 0.830 nats
    means = []
    for rho in rhos:
        ests = shipped.estimate_batch([gaussian_pair(500, s, rho) for s in range(4)])
        means.append(np.mean([e.mi for e in ests]))
    assert all(b > a + 0.03 for a, b in zip(means, means[1:])), means
    assert abs(means[0]) < 0.1 and abs(means[-1] - 0.830) < 0.15, means


def test_row_order_invariance_and_batch_agreement(shipped, gaussian_pair):
    x, y = gaussian_pair(300, 0, 0.6)
    perm = np.random.default_rng(0).permutation(300)
    a = shipped.estimate(x, y)
    b = shipped.estimate(x[perm], y[perm])
    assert a.mi == pytest.approx(b.mi, abs=1e-5)
    assert a.info["quantity"] == "mi"
    batch = shipped.estimate_batch([(x, y), gaussian_pair(200, 1, 0.3), (x[perm], y[perm])])
    assert batch[0].mi == pytest.approx(a.mi, abs=1e-5) and batch[2].mi == pytest.approx(a.mi, abs=1e-5)
    assert batch[1].mi == pytest.approx(shipped.estimate(*gaussian_pair(200, 1, 0.3)).mi, abs=1e-5)


def test_multivariate_is_sliced(gaussian_pair):
    est = InfoNetEstimator(n_projections=16)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = x[:, :2] + 0.5 * rng.normal(size=(400, 2))
    dep = est.estimate(x, y)
    ind = est.estimate(x, rng.normal(size=(400, 2)))
    assert dep.info["quantity"] == "sliced_mi" and dep.info["n_projections"] == 16
    assert dep.mi > ind.mi + 0.1
    x1, y1 = gaussian_pair(400, 0, 0.5)
    assert est.estimate(x1, np.hstack([y1, y1])).info["quantity"] == "sliced_mi"
