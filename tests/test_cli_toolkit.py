"""The shell side of the toolkit: independence tests, conditional MI and MI matrices."""

import io
import json
from contextlib import redirect_stdout

import numpy as np
import pandas as pd
import pytest

from estimators.cli import main, matrix_main


@pytest.fixture()
def csv(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    df["d"] = df.a + df.c + 0.5 * rng.normal(size=200)
    path = tmp_path / "data.csv"
    df.to_csv(path, index=False)
    return path


def _run(fn, argv):
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = fn(argv)
    return rc, buf.getvalue()


def test_permutation_test_on_the_shell(csv):
    rc, out = _run(main, [str(csv), "--x", "a", "--y", "d", "--permutations", "49", "--json"])
    res = json.loads(out)
    assert rc == 0 and res["p_value"] == pytest.approx(1 / 50, abs=1 / 50) and res["permutations"] == 49
    rc, out = _run(main, [str(csv), "--x", "a", "--y", "b", "--permutations", "49"])
    assert rc == 0 and "p = " in out and "49 permutations" in out


def test_conditional_mi_on_the_shell(csv):
    rc, out = _run(main, [str(csv), "--x", "a", "--y", "d", "--z", "c", "--estimator", "gaussian", "--json"])
    est = json.loads(out)
    df = pd.read_csv(csv)
    from estimators.conditional import gaussian_cmi

    assert rc == 0 and est["mi"] == pytest.approx(gaussian_cmi(df[["a"]], df[["d"]], df[["c"]]))
    rc, out = _run(main, [str(csv), "--x", "a", "--y", "d", "--z", "c", "--unit", "bits"])
    assert rc == 0 and out.startswith("CMI = ") and "bits" in out
    assert main([str(csv), "--x", "a", "--y", "d", "--z", "c", "--permutations", "9"]) == 2


def test_mi_matrix_on_the_shell(csv):
    rc, out = _run(matrix_main, [str(csv), "--estimator", "ksg", "--columns", "a,b,d"])
    m = pd.read_csv(io.StringIO(out), index_col=0)
    assert rc == 0 and list(m.columns) == ["a", "b", "d"] and m.loc["a", "d"] > 0.3 > m.loc["a", "b"]
    assert matrix_main([str(csv), "--estimator", "ksg", "--columns", "zz"]) == 2
