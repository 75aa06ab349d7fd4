"""Runner, evaluation and config checks (no Snakemake)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import estimators
from benchmarks.config import check
from benchmarks.corpora import build_shard
from benchmarks.evaluate import PLOTS, collect, evaluate
from benchmarks.runner import run_shard
from estimators.registry import _REGISTRY

SPEC = {
    "seed": 5,
    "shards": 1,
    "blocks": [
        {
            "split": "imd",
            "families": ["multi_normal-dense-base", "multi_student-dense-base"],
            "n": [8, 60, 200],
            "per_cell": 1,
            "dims": {"random": [2, 4]},
        }
    ],
}


@pytest.fixture
def shard(tmp_path):
    p = tmp_path / "shard-000.npz"
    build_shard(SPEC, 0, p)
    return p


def test_runner_records_failures_instead_of_dropping(shard, tmp_path):
    # k=10 needs 11 rows: the n=8 datasets must come back as failed rows, not vanish.
    df = run_shard("ksg10", {"estimator": "ksg", "params": {"k": 10}}, shard, "c", tmp_path / "e.csv", progress=False)
    assert len(df) == 6
    failed = df[df["status"] == "failed"]
    assert set(failed["n"]) == {8} and failed["error"].str.contains("too few rows").all()
    assert np.isfinite(df.loc[df["status"] == "ok", "mi"]).all()
    assert (tmp_path / "e.csv").is_file()


@pytest.mark.parametrize("name", estimators.available())
def test_runner_is_deterministic(name, shard, tmp_path):
    # Every column but the wall time, for every registered estimator: same shard, same rows.
    entry = {"estimator": name, "params": dict(_REGISTRY[name].test_params)}
    a = run_shard(name, entry, shard, "c", tmp_path / "a.csv", progress=False).drop(columns="seconds")
    b = run_shard(name, entry, shard, "c", tmp_path / "b.csv", progress=False).drop(columns="seconds")
    pd.testing.assert_frame_equal(a, b)
    assert (a["status"] == "ok").sum() >= 4  # n = 8 may be below an estimator's minimum


def test_batched_calls_take_datasets_of_similar_n(shard, tmp_path, monkeypatch):
    # The batch's wall time is shared evenly, so a call mixing n = 60 and n = 200 would report
    # the same seconds for both: calls must be formed by n.
    import benchmarks.runner as runner
    from estimators.mist.adapter import MIST

    calls = []
    original = MIST._estimate_batch

    def recording(self, datasets):
        calls.append(sorted(len(x) for x, _ in datasets))
        return original(self, datasets)

    monkeypatch.setattr(MIST, "_estimate_batch", recording)
    monkeypatch.setattr(runner, "BATCH", 2)
    df = run_shard("mist", {"estimator": "mist"}, shard, "c", tmp_path / "m.csv", progress=False)
    assert calls == [[60, 60], [200, 200]]  # n = 8 is below MIST's training n: failed rows, no call
    assert df["id"].is_monotonic_increasing and (df.loc[df["n"] == 8, "status"] == "failed").all()


def test_collect_names_missing_shards_and_rows(shard, tmp_path):
    out = tmp_path / "e.csv"
    run_shard("ksg", {"estimator": "ksg"}, shard, "c", out, progress=False)
    with pytest.raises(ValueError, match="missing estimates for estimator 'gaussian'"):
        collect({("c", "ksg", 0): out, ("c", "gaussian", 0): tmp_path / "nope.csv"}, {"c": SPEC})
    pd.read_csv(out, dtype={"id": str}).iloc[:-1].to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(ValueError, match="1 dataset\\(s\\) missing"):
        collect({("c", "ksg", 0): tmp_path / "short.csv"}, {"c": SPEC})


def test_evaluate_writes_tables_and_plots(shard, tmp_path):
    files = {}
    for label, entry in (
        ("ksg", {"estimator": "ksg", "params": {"n_bootstrap": 10}}),
        ("gaussian", {"estimator": "gaussian"}),
        ("ksg10", {"estimator": "ksg", "params": {"k": 10}}),
    ):  # n = 8 < k + 1: fails
        files[("c", label, 0)] = tmp_path / f"{label}.csv"
        run_shard(label, entry, shard, "c", files[("c", label, 0)], progress=False)
    written = evaluate(collect(files, {"c": SPEC}), tmp_path / "out", {"ci_bootstrap": 50})
    mse = pd.read_csv(tmp_path / "out" / "tables" / "mse_by_nbin.csv")
    assert set(mse["estimator"]) == {"ksg", "gaussian", "ksg10"}
    assert np.isfinite(mse[["(100,300]"]].to_numpy()).all()
    acc = pd.read_csv(tmp_path / "out" / "tables" / "accuracy.csv")
    # ksg10's n = 8 datasets are failures: counted, not dropped ...
    assert (acc["datasets"] == 6).all()
    assert acc.set_index("estimator").loc["ksg10", "failure_rate"] == pytest.approx(2 / 6)
    # ... and shown where MSE is reported, since MSE averages the estimated datasets only
    fail = pd.read_csv(tmp_path / "out" / "tables" / "failures_by_nbin.csv").set_index("estimator")
    assert fail.loc["ksg10", "[1,10)"] == 1.0 and fail.loc["ksg10", "(100,300]"] == 0.0
    assert (fail.loc["ksg", ["[1,10)", "(100,300]"]] == 0).all()
    assert np.isnan(mse.set_index("estimator").loc["ksg10", "[1,10)"])  # an all-failed bin: an empty cell
    ci = pd.read_csv(tmp_path / "out" / "tables" / "mse_by_nbin_ci.csv").set_index("estimator")
    assert "(2/2 failed)" in ci.loc["ksg10", "[1,10)"] and "failed" not in ci.loc["ksg", "[1,10)"]
    magic = {".png": b"\x89PNG", ".pdf": b"%PDF"}
    assert sorted(Path(p).suffix for p in written["plots"]) == [".pdf"] * len(PLOTS) + [".png"] * len(PLOTS)
    for p in written["plots"]:
        assert open(p, "rb").read(4) == magic[Path(p).suffix]
    assert (tmp_path / "out" / "tables" / "coverage.tex").read_text().count(r"\toprule") == 1
    # The same tables in bits: MI-valued figures scale by 1 / ln 2 (MSE by its square); coverage and
    # relative error do not change.
    from benchmarks.evaluate import write_tables

    write_tables(collect(files, {"c": SPEC}), tmp_path / "bits", {"ci_bootstrap": 50, "unit": "bits"})
    bits = pd.read_csv(tmp_path / "bits" / "accuracy.csv")
    assert np.allclose(bits["mse"], acc["mse"] / np.log(2) ** 2, equal_nan=True)
    assert np.allclose(bits["bias"], acc["bias"] / np.log(2), equal_nan=True)
    assert np.allclose(bits["mean_rel_error"], acc["mean_rel_error"], equal_nan=True)
    cov = pd.read_csv(tmp_path / "out" / "tables" / "coverage.csv")
    assert np.allclose(pd.read_csv(tmp_path / "bits" / "coverage.csv")["coverage"], cov["coverage"])
    assert "MSE (bits²)" in (tmp_path / "bits" / "mse_by_nbin.md").read_text()


def _config(**over):
    cfg = {
        "corpora": {"c": SPEC},
        "estimators": {"ksg": {"estimator": "ksg", "corpora": ["c"]}},
        "evaluation": {"reference_estimator": "ksg"},
    }
    cfg.update(over)
    return cfg


def test_config_check_names_the_key():
    check(_config())
    with pytest.raises(ValueError, match=r"estimators.bad.estimator: unknown estimator 'kgs'"):
        check(
            _config(
                estimators={
                    "ksg": {"estimator": "ksg", "corpora": ["c"]},
                    "bad": {"estimator": "kgs", "corpora": ["c"]},
                }
            )
        )
    with pytest.raises(ValueError, match=r"estimators.ksg.corpora: unknown corpus 'x'"):
        check(_config(estimators={"ksg": {"estimator": "ksg", "corpora": ["x"]}}))
    bad_family = {**SPEC, "blocks": [{**SPEC["blocks"][0], "families": ["multi_normal-dense-bogus"]}]}
    with pytest.raises(ValueError, match=r"corpora.c: unknown family 'multi_normal-dense-bogus'"):
        check(_config(corpora={"c": bad_family}))
    twice = {**SPEC, "blocks": [SPEC["blocks"][0], SPEC["blocks"][0]]}  # same split, families, sizes
    with pytest.raises(ValueError, match=r"corpora.c: blocks repeat dataset"):
        check(_config(corpora={"c": twice}))
    # Parameters are checked when the DAG is parsed, not inside the job after the corpora are built.
    with pytest.raises(ValueError, match=r"estimators.ksg.params: .*'kk'"):
        check(_config(estimators={"ksg": {"estimator": "ksg", "params": {"kk": 5}, "corpora": ["c"]}}))
    # ... on the CPU: the DAG may be parsed on a node without the GPUs its jobs will get.
    check(
        _config(
            estimators={
                "ksg": {"estimator": "ksg", "corpora": ["c"]},
                "mine": {"estimator": "mine", "params": {"device": "cuda"}, "corpora": ["c"]},
            }
        )
    )
    with pytest.raises(ValueError, match=r"estimators.mine.params: .*steps"):
        check(
            _config(
                estimators={
                    "ksg": {"estimator": "ksg", "corpora": ["c"]},
                    "mine": {"estimator": "mine", "params": {"steps": 0}, "corpora": ["c"]},
                }
            )
        )


def test_sliced_mi_rows_are_labelled_apart_in_tables():
    from benchmarks import metrics

    df = pd.DataFrame(
        {
            "estimator": ["infonet", "infonet", "ksg"],
            "quantity": ["mi", "sliced_mi", "mi"],
            "status": "ok",
            "mi": [0.4, 0.1, 0.5],
            "true_mi": 0.4,
            "n": 200,
            "dx": [1, 3, 3],
            "dy": [1, 3, 3],
            "lower": np.nan,
            "upper": np.nan,
        }
    )
    labels = metrics.annotate(df)["estimator"].tolist()
    assert labels == ["infonet", "infonet [sliced MI]", "ksg"]
    assert metrics.annotate(metrics.annotate(df))["estimator"].tolist() == labels  # idempotent


def test_every_table_and_plot_has_its_report_caption():
    # `snakemake --report` stops at the first missing caption file; table captions follow TABLES.
    from pathlib import Path

    from benchmarks.evaluate import PLOTS, TABLES

    report = Path(__file__).resolve().parents[1] / "workflow" / "report"
    for name, caption in TABLES.items():
        text = (report / "tables" / f"{name}.rst").read_text()
        assert text.startswith(caption.format(unit="nats")), name
    for name in PLOTS:
        assert (report / "plots" / f"{name}.rst").read_text().strip(), name


def test_family_heatmap_weights_each_group_by_its_estimated_datasets():
    from benchmarks.plots import family_errors

    # split a: 10 datasets, 9 failed, the survivor off by 100%; split b: 10 exact estimates
    summary = pd.DataFrame(
        {
            "family": ["f", "f"],
            "estimator": ["e", "e"],
            "split": ["a", "b"],
            "mean_rel_error": [1.0, 0.0],
            "datasets": [10, 10],
            "failed": [9, 0],
        }
    )
    assert family_errors(summary).loc["f", "e"] == pytest.approx(1 / 11)


def test_coverage_reports_the_intervals_level_and_count():
    from benchmarks import metrics

    df = pd.DataFrame(
        {
            "estimator": ["a", "a", "a", "b", "b"],
            "status": ["ok"] * 5,
            "mi": [1.0] * 5,
            "true_mi": [1.0, 1.0, 3.0, 1.0, 1.0],
            "n": [50] * 5,
            "dx": [2] * 5,
            "dy": [2] * 5,
            "lower": [0.5, 0.5, 0.5, 0.0, np.nan],
            "upper": [1.5, 1.5, 1.5, 2.0, np.nan],
            "seconds": [0.1] * 5,
            "info": ['{"interval_level": 0.95}'] * 3 + ['{"interval_level": 0.5}', "{}"],
        }
    )
    s = metrics.summarise(metrics.annotate(df), ["estimator"], ci_reps=0).set_index("estimator")
    assert s.loc["a", "level"] == 0.95 and s.loc["a", "intervals"] == 3
    assert s.loc["a", "coverage"] == pytest.approx(2 / 3)
    assert s.loc["b", "level"] == 0.5 and s.loc["b", "intervals"] == 1


def _frame(**cols):
    base = {
        "estimator": ["a", "a"],
        "status": ["ok", "ok"],
        "n": [50, 50],
        "dx": [2, 2],
        "dy": [2, 2],
        "lower": [np.nan] * 2,
        "upper": [np.nan] * 2,
        "seconds": [0.1, 0.1],
        "info": ["{}"] * 2,
    }
    return pd.DataFrame({**base, **cols})


def test_relative_error_is_not_decided_by_a_near_zero_truth():
    from benchmarks import metrics

    # truth 1e-4 read as 0.05: absolute error 0.05, so relative 0.5 against the 0.1-nat floor (not 500)
    df = _frame(mi=[0.05, 2.2], true_mi=[1e-4, 2.0])
    s = metrics.summarise(metrics.annotate(df), ["estimator"], ci_reps=0).iloc[0]
    assert s["mean_rel_error"] == pytest.approx((0.0499 / metrics.REL_ERROR_FLOOR + 0.1) / 2)


def test_times_are_over_the_estimated_datasets():
    from benchmarks import evaluate, metrics

    # a refusal that returns at once must not make the estimator look fast
    df = metrics.annotate(
        _frame(mi=[1.0, np.nan], true_mi=[1.0, 1.0], status=["ok", "failed"], seconds=[2.0, 1e-5]).assign(corpus="c")
    )
    s = metrics.summarise(df, ["estimator"], ci_reps=0).iloc[0]
    assert s["median_seconds"] == 2.0
    t = evaluate._timing(df, "a").iloc[0]
    assert (t["median_seconds"], t["estimated"], t["datasets"]) == (2.0, 1, 2)
    assert t["total_seconds"] == pytest.approx(2.00001)
