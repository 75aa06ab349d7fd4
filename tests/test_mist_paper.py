"""The paper-style MIST (`estimators.mist_paper`): invariances, any dx and dy, strict checkpoints,
training through MIST's loop, sorted quantiles."""

from __future__ import annotations

import json

import numpy as np
import pytest

import estimators
from estimators.checkpoint import CheckpointError, card_path
from estimators.mist_paper.features import PaperFeatures, batch_features, dataset_values
from estimators.testing import check_estimator

TINY = {
    "architecture": "paper",
    "max_steps": 4,
    "max_minutes": 5,
    "val_every": 2,
    "batch_size": 8,
    "workers": 0,
    "replay_pool": 0,
    "schedule_by": "steps",
    "seed": 3,
    "data": {"val_size": 8, "n": [10, 40], "d": [1, 4]},
    "model": {"feat_width": 8, "feat_heads": 2, "width": 16, "heads": 2, "inducing": 4, "n_isab": 1},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Weights of a few training steps: (point weights, quantile weights, their cards)."""
    from estimators.mist.training import train

    d = tmp_path_factory.mktemp("paper")
    point = d / "mist_paper.safetensors"
    qr = d / "mist_paper_qr.safetensors"
    cards = (
        train(TINY, point, d / "p.csv"),
        train({**TINY, "quantile": True, "calib_size": 12}, qr, d / "q.csv"),
    )
    return point, qr, cards


def _data(n=300, dx=3, dy=5, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, max(dx, dy)))
    x = z[:, :dx] + 0.5 * rng.standard_normal((n, dx))
    y = np.tanh(z[:, :dy]) + 0.5 * rng.standard_normal((n, dy))
    return x, y


def test_training_writes_a_strict_card_and_is_reproducible(trained, tmp_path):
    from estimators.mist.training import train

    point, qr, (card, qcard) = trained
    assert card["kind"] == "mist_paper" and qcard["kind"] == "mist_paper_qr"
    assert card["architecture"]["design"] == "paper" and card["features"]["normalisation"] == "zscore"
    assert card["training"]["final_step"] == 4 and card["training"]["stopped_by"] == "max_steps"
    assert qcard["calibration"]["spread_scale"] >= 1.0
    again = tmp_path / "again.safetensors"
    train(TINY, again, tmp_path / "again.csv")
    assert again.read_bytes() == point.read_bytes()  # same seed, same bytes


def test_row_order_and_column_order_within_x_and_y_change_nothing(trained):
    est = estimators.get("mist_paper", weights=str(trained[0]))
    x, y = _data()
    rng = np.random.default_rng(1)
    rows, cx, cy = rng.permutation(len(x)), rng.permutation(x.shape[1]), rng.permutation(y.shape[1])
    base = est.estimate(x, y).mi
    assert est.estimate(x[rows], y[rows]).mi == pytest.approx(base, abs=1e-5)
    assert est.estimate(x[:, cx], y[:, cy]).mi == pytest.approx(base, abs=1e-5)
    # Not a constant: moving a column from y to x is another dataset, and it reads differently.
    raw = estimators.get("mist_paper", weights=str(trained[0]), clip=False)
    assert raw.estimate(np.c_[x, y[:, :1]], y[:, 1:]).mi != pytest.approx(raw.estimate(x, y).mi, abs=1e-6)


def test_the_subsample_ignores_row_and_column_order():
    x, y = _data(n=500)
    cfg = PaperFeatures(max_rows=64)
    a = dataset_values(x, y, cfg)
    rng = np.random.default_rng(2)
    rows, cx = rng.permutation(500), rng.permutation(3)
    b = dataset_values(x[rows][:, cx], y[rows], cfg)
    assert a.shape == (64, 8)
    np.testing.assert_array_equal(np.sort(a[:, :3], axis=1), np.sort(b[:, :3], axis=1))
    np.testing.assert_array_equal(a[:, 3:], b[:, 3:])


def test_unequal_dims_and_padding_change_no_estimate(trained):
    # dx != dy, in one batch with other shapes (padded to the largest dx + dy): each as if alone.
    est = estimators.get("mist_paper", weights=str(trained[0]), clip=False)
    sets = [_data(200, 1, 7, 0), _data(200, 6, 2, 1), _data(200, 3, 3, 2)]
    batch = [e.mi for e in est.estimate_batch(sets)]
    single = [est.estimate(*d).mi for d in sets]
    np.testing.assert_allclose(batch, single, atol=1e-5)
    tok, ctx, g = batch_features(sets, est.features)
    assert tok.shape == (3, 64, 8) and ctx.tolist()[0] == [200, 1, 7] and not g.any()


def test_batch_features_refuse_mixed_n():
    with pytest.raises(ValueError, match="share one n"):
        batch_features([_data(50), _data(60)], PaperFeatures())


def test_quantiles_are_sorted(trained):
    for calibrated in (True, False):
        est = estimators.get("mist_paper_qr", weights=str(trained[1]), calibrated=calibrated, clip=False)
        for e in est.estimate_batch([_data(100, 2, 2, s) for s in range(4)]):
            q = [e.quantiles[t] for t in sorted(e.quantiles)]
            assert q == sorted(q) and e.lower <= e.mi <= e.upper


def test_the_card_check_refuses_other_checkpoints(trained, tmp_path):
    point, qr, _ = trained
    with pytest.raises(CheckpointError, match="train_mist_paper"):
        estimators.get("mist_paper")  # nothing shipped: the error names the rule that trains it
    with pytest.raises(CheckpointError, match="not found"):
        estimators.get("mist_paper", weights=str(tmp_path / "absent.safetensors"))
    shipped_mist = estimators.mist.adapter.WEIGHTS_DIR / "mist.safetensors"
    with pytest.raises(CheckpointError, match="'mist' checkpoint"):
        estimators.get("mist_paper", weights=str(shipped_mist))
    with pytest.raises(CheckpointError, match="'mist_paper' checkpoint"):
        estimators.get("mist", weights=str(point))
    with pytest.raises(CheckpointError, match="'mist_paper' checkpoint"):
        estimators.get("mist_paper_qr", weights=str(point))
    # A card that claims the kind but not the design is refused too (the hash is fixed up to get there).
    card = json.loads(card_path(point).read_text())
    del card["architecture"]["design"]
    forged = tmp_path / "forged.safetensors"
    forged.write_bytes(point.read_bytes())
    card_path(forged).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="design"):
        estimators.get("mist_paper", weights=str(forged))


def test_bad_training_parameters_are_named():
    from estimators.mist.training import check_params

    with pytest.raises(ValueError, match="architecture must be one of"):
        check_params({"architecture": "papr"})
    with pytest.raises(ValueError, match="k_pairs"):  # MIST's inputs mean nothing here
        check_params({"architecture": "paper", "features": {"k_pairs": 8}})
    with pytest.raises(TypeError, match="widht"):
        check_params({"architecture": "paper", "model": {"widht": 8}})


def test_conformance_on_trained_weights(trained):
    # The shared suite runs these on random-init test weights (tests/conftest.py); here on trained ones.
    for name, w in (("mist_paper", trained[0]), ("mist_paper_qr", trained[1])):
        check_estimator(
            estimators.registry.estimator_class(name)(weights=str(w)),
            skip=["dependence_scores_above_independence", "bad_input_cases"],
        )


@pytest.mark.slow
def test_the_dag_trains_and_runs_mist_paper_under_shipped_weights(tmp_path):
    """A model without a `shipped` file is trained by the DAG even under use_shipped_weights, and its
    estimator gets the trained file (weights_input): the smoke corpus, tiny budgets."""
    import subprocess

    import pandas as pd
    import yaml
    from conftest import ROOT, snakemake_cmd

    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    assert cfg["use_shipped_weights"] is True
    tiny = {**TINY, "max_steps": 3, "data": {**TINY["data"], "shards": 1, "per_shard": 16}}
    cfg["models"] = {
        "mist_paper": {"trainer": "mist", "threads": 1, "train": tiny},
        "mist_paper_qr": {"trainer": "mist", "threads": 1, "train": {**tiny, "quantile": True, "calib_size": 12}},
    }
    for name in ("mist_paper", "mist_paper_qr"):
        cfg["estimators"][name] = {"estimator": name, "model": name, "corpora": ["standard"]}
    for section in ("independence", "cmi", "consistency"):  # they name the smoke config's estimators only
        cfg.pop(section, None)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    out, work = tmp_path / "results", tmp_path / "work"
    work.mkdir()
    cmd = snakemake_cmd(tmp_path / "config.yaml", out, work, "--cores", "2", "-q")
    r = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert json.loads((out / "models" / "mist_paper_qr.json").read_text())["kind"] == "mist_paper_qr"
    est = pd.read_csv(out / "estimates" / "standard" / "mist_paper" / "shard-000.csv")
    assert (est["status"] == "ok").any()
    assert {"mist_paper", "mist_paper_qr"} <= set(pd.read_csv(out / "tables" / "mse_by_nbin.csv")["estimator"])


def test_paper_design_overlay_adds_the_estimators_to_the_default_config():
    """config/paper_design.yaml on top of config/config.yaml: a valid config whose estimators add
    mist_paper and mist_paper_qr to the default ones (which leave them out, for the DAG's budget)."""
    import yaml
    from conftest import ROOT
    from snakemake.utils import update_config

    from benchmarks.config import check

    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert not {"mist_paper", "mist_paper_qr"} & set(base["estimators"])
    merged = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    update_config(merged, yaml.safe_load((ROOT / "config" / "paper_design.yaml").read_text()))
    assert set(merged["estimators"]) == set(base["estimators"]) | {"mist_paper", "mist_paper_qr"}
    check(merged, build_estimators=False)
