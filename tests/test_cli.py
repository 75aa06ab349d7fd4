import json
import subprocess
import sys

import numpy as np


def _run(*args):
    return subprocess.run([sys.executable, "-m", "estimators.cli", *args], capture_output=True, text=True, timeout=120)


def _data(tmp_path):
    rng = np.random.default_rng(0)
    z = rng.multivariate_normal([0, 0, 0], [[1, 0.75, 0], [0.75, 1, 0], [0, 0, 1]], size=1500)
    np.savetxt(tmp_path / "d.csv", z, delimiter=",", header="a,b,c", comments="")
    np.save(tmp_path / "d.npy", z)


def test_csv_by_name_with_interval(tmp_path):
    _data(tmp_path)
    r = _run(str(tmp_path / "d.csv"), "--x", "a", "--y", "b", "--param", "n_bootstrap=20")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("MI = ") and "90% interval" in r.stdout


def test_npy_json(tmp_path):
    _data(tmp_path)
    r = _run(str(tmp_path / "d.npy"), "--x", "0", "--y", "1:3", "--estimator", "gaussian", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert abs(out["mi"] - 0.413) < 0.05 and out["ok"]


def test_errors_name_the_problem(tmp_path):
    _data(tmp_path)
    r = _run(str(tmp_path / "d.csv"), "--x", "a", "--y", "zz")
    assert r.returncode == 2 and "unknown column 'zz'" in r.stderr
    r = _run(str(tmp_path / "missing.csv"), "--x", "0", "--y", "1")
    assert r.returncode == 2 and "not found" in r.stderr
    r = _run(str(tmp_path / "d.csv"), "--x", "a", "--y", "b", "--estimator", "nope")
    assert r.returncode == 2 and "unknown estimator" in r.stderr
