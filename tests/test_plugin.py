"""Estimators from another installed package, registered by an entry point in the group
`mist_bench.estimators`: found, checked by the public conformance checks, run through the DAG.

The package (`mi_plugin_demo`) and its `*.dist-info` are written to a temporary directory,
which is put on the path (in this process) or on PYTHONPATH (Snakemake and its jobs), as an
installed distribution would be.
"""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import snakemake_cmd

import estimators
from estimators import registry
from estimators.testing import check_estimator

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = '''\
"""A separately installed estimator: registered by its entry point, not by mist-bench."""
import numpy as np

from estimators import Estimate, Estimator


class GaussianDemo(Estimator):
    """MI of the Gaussian with the data's covariance: (log|Sxx| + log|Syy| - log|S|) / 2,
    `ridge` added to the diagonal of the correlation matrix."""

    name = "gauss_demo"

    def __init__(self, ridge: float = 0.0) -> None:
        if not ridge >= 0:
            raise ValueError(f"ridge must be >= 0, got {ridge}")
        super().__init__(ridge=float(ridge))

    def _estimate(self, x, y):
        dx = x.shape[1]
        c = np.corrcoef(np.hstack([x, y]), rowvar=False) + self.params["ridge"] * np.eye(dx + y.shape[1])
        logdet = lambda a: np.linalg.slogdet(a)[1]  # noqa: E731
        return Estimate(mi=max(0.0, 0.5 * float(logdet(c[:dx, :dx]) + logdet(c[dx:, dx:]) - logdet(c))),
                        info={"closed_form": "gaussian"})


def not_an_estimator():
    return 1
'''


def write_plugin(root: Path, entry_points: str, module: str = PLUGIN) -> Path:
    """`mi_plugin_demo` and a dist-info declaring `entry_points` (lines of `name = module:attr`)."""
    (root / "mi_plugin_demo").mkdir(parents=True)
    (root / "mi_plugin_demo" / "__init__.py").write_text(module)
    info = root / "mi_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mi-plugin-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\n{textwrap.dedent(entry_points)}\n")
    return root


@pytest.fixture
def fresh_registry(monkeypatch):
    """The registry as if not yet loaded; afterwards, as it was (plugin classes and modules gone)."""
    registry.available()
    before = dict(registry._REGISTRY)
    monkeypatch.setattr(registry, "_LOADED", False)
    yield monkeypatch
    registry._REGISTRY.clear()
    registry._REGISTRY.update(before)
    for mod in [m for m in sys.modules if m.split(".")[0] == "mi_plugin_demo"]:
        del sys.modules[mod]


def test_an_entry_point_registers_an_estimator_of_another_package(tmp_path, fresh_registry):
    fresh_registry.syspath_prepend(str(write_plugin(tmp_path, "gauss_demo = mi_plugin_demo:GaussianDemo")))
    assert "gauss_demo" in estimators.available() and {"ksg", "mist"} <= set(estimators.available())
    est = estimators.get("gauss_demo", ridge=0.0)
    assert type(est).__module__ == "mi_plugin_demo" and repr(est) == "GaussianDemo(ridge=0.0)"
    rng = np.random.default_rng(0)
    z = rng.multivariate_normal([0, 0], [[1, 0.75], [0.75, 1]], size=5000)
    assert est.estimate(z[:, :1], z[:, 1:]).mi == pytest.approx(-0.5 * np.log(1 - 0.75**2), abs=0.03)
    # The public conformance checks, every one of them, on the plugin.
    assert all(v is None for v in check_estimator("gauss_demo").values())


@pytest.mark.parametrize(
    "entry, match",
    [
        (
            "gauss_demo = mi_plugin_missing:GaussianDemo",
            r"failed to load: entry point 'gauss_demo' = 'mi_plugin_missing:GaussianDemo' in group "
            r"'mist_bench.estimators' \(distribution mi-plugin-demo 0.1\): ModuleNotFoundError",
        ),
        ("gauss_demo = mi_plugin_demo:Absent", r"failed to load: entry point 'gauss_demo' .*AttributeError"),
        (
            "gauss_demo = mi_plugin_demo:not_an_estimator",
            r"entry point 'gauss_demo' .* names <function not_an_estimator .*not a subclass of estimators.Estimator",
        ),
        ("gauss = mi_plugin_demo:GaussianDemo", r"entry point 'gauss' .*`name` is 'gauss_demo'; it must equal"),
    ],
)
def test_a_broken_plugin_is_an_error_naming_its_entry_point(tmp_path, fresh_registry, entry, match):
    fresh_registry.syspath_prepend(str(write_plugin(tmp_path, entry)))
    with pytest.raises(registry.EstimatorPluginError, match=match):
        estimators.available()
    with pytest.raises(registry.EstimatorPluginError):  # every time, not only the first
        estimators.get("ksg")


def test_a_plugin_cannot_take_a_registered_name(tmp_path, fresh_registry):
    clash = PLUGIN.replace('name = "gauss_demo"', 'name = "ksg"')
    fresh_registry.syspath_prepend(str(write_plugin(tmp_path, "ksg = mi_plugin_demo:GaussianDemo", clash)))
    with pytest.raises(
        registry.EstimatorPluginError,
        match=r"entry point 'ksg' .*'ksg' is registered twice \(estimators.ksg.KSG and "
        r"mi_plugin_demo.GaussianDemo\)",
    ):
        estimators.available()


def test_the_package_scan_imports_the_estimator_modules_only():
    # Found from the source (a `@register`-decorated class), not a list; nothing else is imported.
    code = (
        "import sys, estimators; cheap = set(sys.modules); estimators.available(); "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('estimators'))))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    loaded = set(r.stdout.split())
    assert set(registry.estimator_modules()) == {
        "estimators.gaussian",
        "estimators.infonce",
        "estimators.infonet.adapter",
        "estimators.ksg",
        "estimators.minde",
        "estimators.mine",
        "estimators.mist.adapter",
        "estimators.mist_paper.adapter",
    }
    assert set(registry.estimator_modules()) <= loaded
    assert not {
        m
        for m in loaded
        if m.startswith(("estimators.synthetic", "estimators.cli", "estimators.testing"))
        or m.endswith(".training")
        and not m.startswith("estimators.neural")
    }, loaded
    # `import estimators` alone loads no estimator (and no torch).
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, estimators; print('torch' in sys.modules, "
            "any(m.startswith('estimators.ksg') for m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert r.stdout.split() == ["False", "False"], r.stdout + r.stderr


@pytest.mark.slow
def test_a_plugin_estimator_runs_through_the_dag(tmp_path):
    """The smoke config, shrunk to 4 datasets in one shard, estimated by the plugin and KSG."""
    if shutil.which("snakemake") is None:
        pytest.fail("snakemake is not installed (it is a runtime dependency)")
    plugins = write_plugin(tmp_path / "site", "gauss_demo = mi_plugin_demo:GaussianDemo")
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    cfg["corpora"] = {
        "tiny": {
            "seed": 3,
            "shards": 1,
            "blocks": [
                {
                    "split": "imd",
                    "families": ["multi_normal-dense-base", "multi_student-dense-base"],
                    "n": [60, 150],
                    "per_cell": 1,
                    "dims": {"random": [2, 4]},
                }
            ],
        }
    }
    cfg["estimators"] = {
        "ksg": {"estimator": "ksg", "params": {"k": 5}, "corpora": ["tiny"]},
        "demo": {"estimator": "gauss_demo", "params": {"ridge": 0.0}, "corpora": ["tiny"]},
    }
    cfg["evaluation"] = {**cfg["evaluation"], "ci_bootstrap": 20}
    for section in ("independence", "cmi", "consistency"):  # they name the smoke config's estimators
        cfg.pop(section, None)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    out, work = tmp_path / "results", tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")]))}
    cmd = snakemake_cmd(tmp_path / "config.yaml", out, work, "--cores", "1", "-q", targets=["tables"])
    r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    est = pd.read_csv(out / "estimates" / "tiny" / "demo" / "shard-000.csv")
    assert len(est) == 4 and (est["status"] == "ok").all() and (est["method"] == "gauss_demo").all()
    assert np.isfinite(est["mi"]).all() and est["info"].str.contains("closed_form").all()
    # On the Gaussian datasets the closed form is near the truth.
    normal = est[est["family"].str.startswith("multi_normal")]
    assert len(normal) == 2 and np.allclose(normal["mi"], normal["true_mi"], atol=0.25), normal[["mi", "true_mi"]]
    acc = pd.read_csv(out / "tables" / "accuracy.csv")
    assert {"demo", "ksg"} <= set(acc["estimator"]), acc
    assert (acc.set_index("estimator").loc["demo", "datasets"] == 4).all()
    assert "demo" in (out / "tables" / "accuracy.md").read_text()
    # Without the plugin on the path, the config names an unknown estimator: an error before any job.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(cmd + ["-n"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "estimators.demo.estimator: unknown estimator 'gauss_demo'" in r.stdout + r.stderr
