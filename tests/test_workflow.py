"""End to end: the smoke config through snakemake in a temporary directory."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import snakemake_cmd

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_smoke_dag(tmp_path):
    if shutil.which("snakemake") is None:
        pytest.fail("snakemake is not installed (it is a runtime dependency)")
    out, work = tmp_path / "results", tmp_path / "work"
    work.mkdir()
    cmd = snakemake_cmd(ROOT / "config" / "smoke.yaml", out, work)
    r = subprocess.run(cmd + ["--cores", "2", "-q"], cwd=work, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    mse = pd.read_csv(out / "tables" / "mse_by_nbin.csv")
    bins = [c for c in mse.columns if c.startswith(("[", "("))]
    assert len(mse) > 0 and bins
    assert np.isfinite(mse[bins].to_numpy(dtype=float)).all()
    for name in ("accuracy", "timing", "coverage", "summary_by_family", "failures_by_nbin"):
        for ext in ("csv", "md", "tex"):
            assert (out / "tables" / f"{name}.{ext}").is_file()
    from benchmarks.evaluate import PLOTS

    for name in PLOTS:  # PNG for the report, vector PDF for papers
        assert (out / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (out / "plots" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    assert (out / "plots" / "mse_vs_n.pdf").stat().st_size > 1000
    # The independence benchmark and the CMI corpus are DAG outputs too.
    type1 = pd.read_csv(out / "tables" / "independence_type1.csv")
    assert set(type1["method"]) == {"ksg", "gaussian", "dcorr"} and (type1["tests"] + type1["failed"] > 0).all()
    assert (type1.loc[type1["family"] == "gaussian", "tests"] > 0).all()  # KSG fails on repeated rows only
    assert set(pd.read_csv(out / "tables" / "independence_power.csv")["family"]) == {"linear", "parabola"}
    assert (out / "plots" / "power_curves.png").read_bytes()[:4] == b"\x89PNG"
    cmi = pd.read_csv(out / "tables" / "cmi_summary.csv")
    assert set(cmi["method"]) == {"ksg", "gaussian"} and np.isfinite(cmi["mse"]).all()
    # Rules carry a digest of the code they run as a param; it must be stable across invocations,
    # or every run would redo the whole DAG.
    again = subprocess.run(cmd + ["-n"], cwd=work, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
    # The README's report command: every table and plot needs its caption file.
    report = subprocess.run(
        cmd + ["--report", str(out / "report.html")], cwd=work, capture_output=True, text=True, timeout=300
    )
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    assert (out / "report.html").stat().st_size > 10_000


def _dry_run_smoke_with(tmp_path, old, new, *extra):
    """`snakemake -n` on the smoke config with `old` replaced by `new`."""
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "config" / "smoke.yaml").read_text().replace(old, new))
    return subprocess.run(
        ["snakemake", "-n", "--configfile", str(bad), *extra], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_bad_config_fails_before_any_job(tmp_path):
    r = _dry_run_smoke_with(tmp_path, "estimator: ksg", "estimator: kgs", "--config", f"results={tmp_path}/r")
    assert r.returncode != 0
    assert "estimators.ksg.estimator: unknown estimator 'kgs'" in r.stdout + r.stderr
    assert not (tmp_path / "r").exists()


def test_wrong_type_fails_schema(tmp_path):
    r = _dry_run_smoke_with(tmp_path, "shards: 2", "shards: two")
    assert r.returncode != 0 and "shards" in r.stdout + r.stderr


def test_keys_of_the_other_corpus_kind_fail_schema(tmp_path):
    # `n` on a families corpus (planned from its blocks) would be ignored: an error instead.
    r = _dry_run_smoke_with(tmp_path, "    shards: 2\n", "    shards: 2\n    n: [10]\n")
    assert r.returncode != 0 and "Error validating config" in r.stdout + r.stderr


def test_readme_slurm_command_plans_the_paper_dag():
    """The README's SLURM command, exactly as printed, with --dry-run appended."""
    import shlex

    readme = (ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(r"```bash\n(.*?)```", readme, re.S) if "profiles/slurm" in b]
    assert blocks, "README has no SLURM command block"
    cmd = shlex.split(blocks[0].replace("\\\n", " "))
    assert cmd[0] == "snakemake"
    r = subprocess.run(cmd + ["--dry-run", "--quiet", "rules"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def test_torch_estimators_ask_for_a_gpu_and_the_others_do_not(tmp_path):
    r = subprocess.run(
        ["snakemake", "-n", "--config", f"results={tmp_path}/r"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    gpu = {}
    for job in r.stdout.split("\n\n"):
        w = re.search(r"wildcards: corpus=\w+, estimator=(\w+), shard", job)
        g = re.search(r"resources: .*\bgpu=(\d+)", job)
        if w and g:
            gpu.setdefault(w.group(1), set()).add(int(g.group(1)))
    assert gpu["ksg"] == {0} and gpu["gaussian"] == {0}
    assert all(gpu[e] == {1} for e in ("mine", "infonce", "minde_c", "mist", "mist_qr", "infonet")), gpu


@pytest.mark.slow
def test_training_rules_and_trained_estimators_through_the_dag(tmp_path):
    """The smoke corpus with the DAG training its own tiny MIST, MIST_QR and InfoNet and running
    them and MINE; then a forced retrain (a rerun that once lost its weights) must succeed.
    MIST and MIST_QR read a sharded meta-dataset (built once by the metadataset_shard rules)."""
    import yaml

    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    tiny = {
        "max_steps": 6,
        "max_minutes": 2,
        "val_every": 3,
        "batch_size": 8,
        "workers": 0,
        "seed": 1,
        "data": {"val_size": 16, "n": [10, 60], "d": [1, 4], "shards": 2, "per_shard": 16},
        "model": {"width": 16, "heads": 2},
    }
    cfg["use_shipped_weights"] = False
    cfg["models"] = {
        "mist": {"trainer": "mist", "threads": 1, "train": tiny},
        "mist_qr": {"trainer": "mist", "threads": 1, "train": dict(tiny, quantile=True, calib_size=32)},
        "infonet": {
            "trainer": "infonet",
            "threads": 1,
            "train": {"steps": 6, "minutes": 2, "n_min": 20, "n_max": 100, "batch_size": 4, "seed": 0},
        },
    }
    cfg["estimators"].update(
        {
            "mist": {"estimator": "mist", "model": "mist", "corpora": ["standard"]},
            "mist_qr": {"estimator": "mist_qr", "model": "mist_qr", "corpora": ["standard"]},
            "infonet": {
                "estimator": "infonet",
                "model": "infonet",
                "params": {"n_projections": 4},
                "corpora": ["standard"],
            },
            "mine": {"estimator": "mine", "params": {"steps": 30, "eval_every": 10}, "corpora": ["standard"]},
        }
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    out, work = tmp_path / "results", tmp_path / "work"
    work.mkdir()
    cmd = snakemake_cmd(tmp_path / "config.yaml", out, work, "--cores", "2", "-q")
    r = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    mse = pd.read_csv(out / "tables" / "mse_by_nbin.csv")
    assert {"mist", "mist_qr", "mine"} <= set(mse["estimator"]) and mse["estimator"].str.startswith("infonet").any()
    cards = {m: json.loads((out / "models" / f"{m}.json").read_text()) for m in ("mist", "mist_qr", "infonet")}
    assert cards["mist"]["training"]["steps"] > 0 and cards["mist_qr"]["kind"] == "mist_qr"
    # One set of shards for both models (same data spec), one n per training batch.
    shards = sorted((out / "metadataset").glob("*/shard-*.npz"))
    assert [p.name for p in shards] == ["shard-000.npz", "shard-001.npz"], shards
    assert cards["mist"]["training"]["meta_dataset_size"] == 32
    assert cards["mist_qr"]["training"]["data_spec"]["n_block"] == 8
    untouched = {p: p.stat().st_mtime_ns for p in [out / "models" / "mist_qr.safetensors", *shards]}
    again = subprocess.run(cmd + ["--forcerun", "train_mist"], cwd=work, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert (out / "models" / "mist.safetensors").is_file()
    # Retraining MIST leaves the shards, and so MIST_QR, alone.
    assert {p: p.stat().st_mtime_ns for p in untouched} == untouched
    # The device is a param of the torch rules: switching it reruns them (training included), not KSG.
    changed = subprocess.run(
        cmd[:-2] + ["--list-changes", "params", "--config", f"results={out}", "device=auto"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert changed.returncode == 0, changed.stderr[-3000:]
    listed = changed.stdout.split()
    for torch_output in ("/estimates/standard/mist/", "/estimates/standard/mine/", "/models/mist_qr.safetensors"):
        assert any(torch_output in f for f in listed), changed.stdout[-3000:]
    assert not any("/ksg/" in f or "/gaussian/" in f for f in listed), changed.stdout[-3000:]


@pytest.mark.slow
def test_config_device_reaches_the_torch_estimators_and_no_environment_variable_does(tmp_path):
    """The config's `device` is passed to the estimators that take one, as their `device`
    parameter (so it is part of the job's params: switching it reruns them, not KSG). MIST_DEVICE
    in the environment, which once forced the device, changes nothing (cuda:7 would fail here).
    The workflow's parse builds no estimator (a missing weights file passes a dry run); the run
    builds each once, in the main process, and fails before any job."""
    import os

    import yaml

    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    assert cfg["device"] == "cpu"
    cfg["estimators"]["mine"] = {
        "estimator": "mine",
        "params": {"steps": 20, "eval_every": 10},
        "corpora": ["standard"],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    out, work = tmp_path / "results", tmp_path / "work"
    work.mkdir()
    targets = [str(out / "estimates" / "standard" / e / "shard-000.csv") for e in ("ksg", "mine")]

    def cmd(*extra, targets=targets, config=()):
        return [*snakemake_cmd(tmp_path / "config.yaml", out, work, "--cores", "2", *extra, targets=targets), *config]

    env = {**os.environ, "MIST_DEVICE": "cuda:7"}
    r = subprocess.run(cmd(), cwd=work, capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (pd.read_csv(targets[1])["status"] == "ok").all()
    params = {}
    for rec in (work / ".snakemake" / "metadata").iterdir():
        meta = json.loads(rec.read_text())
        if meta.get("rule") == "estimate":
            label = re.search(r"'estimator': '(\w+)'", " ".join(meta["params"])).group(1)
            params[label] = " ".join(meta["params"])
    assert "'device': 'cpu'" in params["mine"] and "device" not in params["ksg"], params
    changed = subprocess.run(
        cmd("--list-changes", "params", config=["device=auto"]),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert any("/mine/" in f for f in changed.stdout.split()), changed.stdout[-3000:]
    assert not any("/ksg/" in f for f in changed.stdout.split()), changed.stdout[-3000:]
    # A parameter only building finds (a missing weights file): the dry run's parse passes, the run stops first.
    cfg["estimators"]["mist"] = {
        "estimator": "mist",
        "params": {"weights": str(tmp_path / "none.safetensors")},
        "corpora": ["standard"],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    mist_target = [str(out / "estimates" / "standard" / "mist" / "shard-001.csv")]
    dry = subprocess.run(cmd("-n", targets=mist_target), cwd=work, capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    run = subprocess.run(cmd(targets=mist_target), cwd=work, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "estimators.mist.params" in run.stdout + run.stderr, run.stdout[-3000:]
    assert not (out / "corpora" / "standard" / "shard-001.npz").exists()
