"""MINDE's self-consistency tests (benchmarks.consistency): datasets, ratios, verdicts, a tiny run."""

import numpy as np
import pandas as pd
import pytest

from benchmarks import consistency as cons

CFG = {
    "seed": 5,
    "pool": 2,
    "noise": 0.3,
    "n": 120,
    "reps": 2,
    "k": 1,
    "independence_tol": 0.05,
    "min_spearman": 1.0,
    "dp_tol": 0.1,
    "add_tol": 0.2,
}
WIDTH = 4  # an 8 x 8 digit pooled 2 x 2


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("consistency") / "consistency.npz"
    cons.build(CFG, path)
    return cons.load(path)


def _datasets(corpus, kind, rep=0):
    """{r: (x, y)} of one kind in one rep."""
    table, arrays = corpus
    rows = table[(table["kind"] == kind) & (table["rep"] == rep)].to_dict("records")
    return {row["r"]: cons.dataset(arrays, row) for row in rows}


# -- data ---------------------------------------------------------------------------------------
def test_pooling_averages_blocks_and_sets_the_dimension():
    img = np.arange(2 * 8 * 8, dtype=float).reshape(2, 8, 8)
    pooled = cons.pool_images(img, 2)
    assert pooled.shape == (2, 4, 4) and pooled[0, 0, 0] == np.mean([0, 1, 8, 9])
    assert cons.images(2, 0).shape == (1797, 16) and cons.images(4, 0).shape == (1797, 4)
    full = cons.images(1, 0)
    assert full.shape == (1797, 64) and 0 <= full.min() and full.max() < 1
    # Dequantisation spreads each level over its own interval: the level is recoverable.
    from sklearn.datasets import load_digits

    assert np.array_equal(np.floor(17 * full).reshape(-1, 8, 8), load_digits().images)


def test_table_dimensions_are_the_datasets_shapes(corpus):
    table, arrays = corpus
    # Per rep: independence, baseline / pair / single at r = 1..4, processing at r = 1..3.
    assert len(table) == CFG["reps"] * (1 + 3 * 4 + 3)
    for row in table.to_dict("records"):
        x, y = cons.dataset(arrays, row)
        assert x.shape == (CFG["n"], row["dx"]) and y.shape == (CFG["n"], row["dy"]), row
    assert set(table.loc[table["kind"] == "pair", "dx"]) == {2 * WIDTH * WIDTH}


def test_b_r_is_exactly_the_first_columns_of_b_r_plus_k(corpus):
    base = _datasets(corpus, "baseline")
    for r in range(1, WIDTH):
        assert np.array_equal(base[r][1], base[r + 1][1][:, : r * WIDTH])
        assert np.array_equal(base[r][0], base[r + 1][0])  # the same images A
    for r, (x, y) in _datasets(corpus, "processing").items():
        assert np.array_equal(x, base[r][0]) and np.array_equal(y, np.hstack([base[r + 1][1], base[r][1]]))
    x, y = base[WIDTH]  # B_R = A + noise, one draw
    assert np.std(y - x) == pytest.approx(CFG["noise"], rel=0.05)


def test_independence_dataset_permutes_the_rows_of_b(corpus):
    _, arrays = corpus
    (x, y), (xb, yb) = _datasets(corpus, "independence")[WIDTH], _datasets(corpus, "baseline")[WIDTH]
    perm = arrays["perm_0"]
    assert np.array_equal(x, xb) and np.array_equal(y, yb[perm])
    assert np.mean(perm != np.arange(len(perm))) > 0.9


def test_additivity_pairs_two_different_images_from_disjoint_halves(corpus):
    _, arrays = corpus
    pairs = np.concatenate([arrays[f"pairs_{rep}"] for rep in range(CFG["reps"])])
    assert not set(pairs[:, 0]) & set(pairs[:, 1])
    (x, y), (x1, y1) = _datasets(corpus, "pair")[2], _datasets(corpus, "single")[2]
    d = WIDTH * WIDTH
    assert np.array_equal(x[:, :d], x1) and np.array_equal(y[:, : 2 * WIDTH], y1)
    assert np.array_equal(x[:, d:], arrays["a"][arrays["pairs_0"][:, 1]])


def test_a_seed_gives_the_same_bytes_and_another_seed_other_data(tmp_path):
    paths = [tmp_path / f"{i}.npz" for i in range(3)]
    for path, seed in zip(paths, (7, 7, 8)):
        cons.build({**CFG, "seed": seed}, path)
    (_, first), (_, again), (_, other) = map(cons.load, paths)
    assert all(first[key].tobytes() == again[key].tobytes() for key in first)
    assert first["a"].tobytes() != other["a"].tobytes() and first["b"].tobytes() != other["b"].tobytes()
    assert not np.array_equal(first["rows_0"], other["rows_0"])


def test_more_rows_than_image_pairs_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="at most 898"):
        cons.build({**CFG, "n": 899}, tmp_path / "c.npz")


# -- ratios and verdicts ------------------------------------------------------------------------
def _estimates(
    method="m",
    rep=0,
    indep=0.01,
    baseline=(0.5, 1.0, 2.0),
    processing=(1.05, 2.1),
    pair=(1.0, 2.0, 4.0),
    single=(0.5, 1.0, 2.0),
    failed=(),
):
    """Hand-made estimate rows of one method and rep (R = 3, k = 1); `failed`: (kind, r) that failed."""
    rows = [dict(kind="independence", r=3, k=0, mi=indep)]
    for kind, values in (("baseline", baseline), ("processing", processing), ("pair", pair), ("single", single)):
        rows += [dict(kind=kind, r=r, k=int(kind == "processing"), mi=v) for r, v in enumerate(values, 1)]
    df = pd.DataFrame(rows).assign(method=method, rep=rep, quantity="mi", seconds=0.5)
    df["ok"] = [(row.kind, row.r) not in failed for row in df.itertuples()]
    df.loc[~df["ok"], "mi"] = np.nan
    return df


def test_ratios_divide_estimates_of_the_same_rep():
    est = pd.concat([_estimates(rep=0), _estimates(rep=1, baseline=(1.0, 2.0, 4.0), processing=(2.0, 4.0))])
    rat = cons.ratios(est).set_index(["test", "rep", "r"])["ratio"]
    assert rat[("baseline", 0, 1)] == 0.25 and rat[("baseline", 0, 3)] == 1.0 and rat[("baseline", 1, 1)] == 0.25
    # I(A; [B_2, B_1]) / I(A; B_2), then I(A; [B_3, B_2]) / I(A; B_3)
    assert rat[("processing", 0, 1)] == pytest.approx(1.05) and rat[("processing", 0, 2)] == pytest.approx(1.05)
    assert rat[("processing", 1, 1)] == 1.0 and rat[("processing", 1, 2)] == 1.0
    assert (rat["additivity"] == 2.0).all() and len(rat) == 2 * (3 + 2 + 3)


def test_summary_passes_and_fails_each_test_against_its_tolerance():
    good = [_estimates("good", rep) for rep in (0, 1)]
    bad = [
        _estimates("bad", rep, indep=0.2, baseline=(0.5, 2.0, 1.0), processing=(1.5, 0.5), pair=(1.0, 1.5, 4.0))
        for rep in (0, 1)
    ]
    broken = [_estimates("broken", 0, failed={("pair", 1)}), _estimates("broken", 1)]
    s = cons.summary(pd.concat([*good, *bad, *broken]), CFG).set_index("method")
    tests = ["indep", "baseline", "dp", "add"]
    assert (s.loc["good", tests] == "pass").all() and s.loc["good", "passed"] == "4/4"
    assert (s.loc["bad", tests] == "fail").all() and s.loc["bad", "passed"] == "0/4"
    assert s.loc["good", "dp_worst"] == pytest.approx(0.05) and s.loc["good", "dp_sd"] == 0
    assert s.loc["bad", "baseline_spearman"] == pytest.approx(0.5) and s.loc["bad", "add_worst"] == pytest.approx(0.5)
    # A failed estimate fails its test (no mean over the rest) and is counted.
    assert list(s.loc["broken", tests]) == ["pass", "pass", "pass", "fail"] and s.loc["broken", "failed"] == 1
    # Tolerances are the config's: a looser one passes the same estimates.
    loose = cons.summary(pd.concat(bad), {**CFG, "add_tol": 0.6, "independence_tol": 0.3}).set_index("method")
    assert list(loose.loc["bad", tests]) == ["pass", "fail", "fail", "pass"]
    # The independence estimate is in the table's unit, its tolerance in nats either way.
    bits = cons.summary(pd.concat(good), CFG, "bits").set_index("method")
    assert bits.loc["good", "indep_mi"] == pytest.approx(0.01 / np.log(2)) and bits.loc["good", "indep"] == "pass"


# -- end to end ---------------------------------------------------------------------------------
def test_tiny_run_with_gaussian_and_ksg(tmp_path):
    cfg = {**CFG, "n": 200}
    path = tmp_path / "consistency.npz"
    cons.build(cfg, path)
    entries = {"gaussian": {"estimator": "gaussian", "params": {"method": "exact"}}, "ksg": {"estimator": "ksg"}}
    est = pd.concat([cons.estimate(label, entry, path) for label, entry in entries.items()], ignore_index=True)
    assert est["ok"].all() and np.isfinite(est["mi"]).all() and (est["seconds"] > 0).all()
    s = cons.summary(est, cfg).set_index("method")
    assert list(s.index) == ["gaussian", "ksg"] and (s["failed"] == 0).all()
    # The Gaussian MI depends on y's column span alone, which B_r's repeated columns leave as it is.
    assert s.loc["gaussian", "dp_worst"] < 1e-6 and s.loc["gaussian", "dp"] == "pass"
    assert (s["baseline"] == "pass").all()  # I(A; B_r) rises with r for both
    cons.plot(cons.ratios(est), tmp_path / "consistency")
    assert (tmp_path / "consistency.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "consistency.pdf").read_bytes()[:5] == b"%PDF-"


@pytest.mark.slow
def test_consistency_target_on_the_smoke_config(tmp_path):
    """The DAG's `consistency` target (outside `all`) on the smoke config: its rules, table, plot
    and report captions."""
    import subprocess

    from conftest import ROOT, snakemake_cmd

    out, work = tmp_path / "results", tmp_path / "work"
    work.mkdir()
    cmd = snakemake_cmd(ROOT / "config" / "smoke.yaml", out, work, targets=["consistency"])
    r = subprocess.run(cmd + ["--cores", "2", "-q"], cwd=work, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    s = pd.read_csv(out / "tables" / "consistency_summary.csv")
    # (The smoke config's Gaussian is BMI's CCA, which fails on B_r's repeated columns: counted, not dropped.)
    assert list(s["method"]) == ["ksg", "gaussian"] and s.loc[0, "failed"] == 0
    assert set(s[["indep", "baseline", "dp", "add"]].to_numpy().ravel()) <= {"pass", "fail"}
    assert (out / "tables" / "consistency_summary.tex").is_file()
    assert (out / "plots" / "consistency.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "plots" / "consistency.pdf").read_bytes()[:5] == b"%PDF-"
    report = subprocess.run(
        cmd + ["--report", str(out / "report.html")], cwd=work, capture_output=True, text=True, timeout=300
    )
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
