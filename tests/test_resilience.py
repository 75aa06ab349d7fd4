"""Resilience: atomic writes, failures recorded per dataset, and a DAG that resumes after a kill.

- `atomic_path`: a writer killed (SIGKILL) mid-write leaves either no target or the old one,
  never a half file under the final name.
- `run_shard`: a dataset whose estimate raises, or comes back NaN, is a `failed` row with its
  reason; the shard's other datasets keep their results and the CSV is complete.
- The smoke DAG, SIGKILLed (whole process group) after some estimate shards exist, then
  unlocked and rerun: the outputs finished before the kill are byte-identical with the same
  mtime (not redone), only the unfinished jobs run again, and the final tables exist.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.corpora import build_shard
from benchmarks.runner import run_shard
from estimators.atomic import atomic_path
from estimators.base import Estimate, Estimator
from estimators.registry import _REGISTRY, register

ROOT = Path(__file__).resolve().parent.parent


# -- atomic writes -----------------------------------------------------------------
_WRITER = textwrap.dedent("""
    import sys, time
    from estimators.atomic import atomic_path
    target, ready = sys.argv[1], sys.argv[2]
    with atomic_path(target) as tmp:
        with open(tmp, "w") as f:
            f.write("half of the new content")
            f.flush()
            open(ready, "w").close()
            time.sleep(60)            # killed here, mid-write
            f.write(" and the rest")
""")


@pytest.mark.parametrize("existing", [False, True])
def test_writer_killed_midway_leaves_no_half_file(tmp_path, existing):
    target, ready = tmp_path / "out.csv", tmp_path / "ready"
    if existing:
        target.write_text("old, complete content")
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target), str(ready)], cwd=ROOT)
    try:
        for _ in range(600):
            if ready.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert ready.exists(), "the writer never started writing"
    finally:
        proc.kill()
        proc.wait()
    if existing:
        assert target.read_text() == "old, complete content"
    else:
        assert not target.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("out.csv", "ready")]
    # SIGKILL skips cleanup: the temporary file may stay, but hidden and never under the final name.
    assert all(n.startswith(".out.") and ".tmp" in n for n in leftovers), leftovers


def test_writer_error_leaves_no_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_finished_file_has_the_usual_permissions(tmp_path):
    # mkstemp makes 0600 files: results and shipped weights were unreadable to the group.
    with atomic_path(tmp_path / "out.csv") as tmp:
        tmp.write_text("x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "out.csv").stat().st_mode & 0o777 == 0o666 & ~mask


# -- one failing dataset does not kill the shard -------------------------------------
SPEC = {
    "seed": 11,
    "shards": 1,
    "blocks": [
        {
            "split": "imd",
            "families": ["multi_normal-dense-base", "multi_student-dense-base"],
            "n": [30, 47, 80],
            "per_cell": 2,
            "dims": {"random": [2, 3]},
        }
    ],
}


class _Flaky(Estimator):
    """Fails, in a different way, on each n of a test corpus; fine otherwise."""

    name = "flaky_test_only"
    min_n = 5

    def _estimate(self, x, y):
        n = x.shape[0]
        if n == 47:
            raise RuntimeError("deliberate failure for n = 47")
        if n == 30:
            return Estimate(mi=math.nan, info={"note": "deliberately NaN"})
        return Estimate(mi=0.25, info={"rows": n})


class _FlakyBatch(_Flaky):
    """Amortised: the batched call raises whenever an n = 47 dataset is in the batch."""

    name = "flaky_batch_test_only"
    amortised = True

    def _estimate(self, x, y):
        if x.shape[0] == 47:
            raise KeyError("deliberate KeyError for n = 47")  # not a ValueError: must still be caught
        return Estimate(mi=0.5)

    def _estimate_batch(self, datasets):
        if any(x.shape[0] == 47 for x, _ in datasets):
            raise RuntimeError("the whole batch failed")
        return [Estimate(mi=0.5) for _ in datasets]


@pytest.fixture
def flaky_registered():
    for cls in (_Flaky, _FlakyBatch):
        register(cls)
    try:
        yield
    finally:
        for cls in (_Flaky, _FlakyBatch):
            _REGISTRY.pop(cls.name, None)


@pytest.mark.parametrize("label", ["flaky_test_only", "flaky_batch_test_only"])
def test_failing_dataset_is_recorded_and_the_shard_kept(tmp_path, flaky_registered, label):
    shard = tmp_path / "shard-000.npz"
    build_shard(SPEC, 0, shard)
    out = tmp_path / "est.csv"
    df = run_shard(label, {"estimator": label}, shard, "c", out, progress=False)
    assert out.is_file()
    disk = pd.read_csv(out, dtype={"id": str, "error": str})
    assert len(disk) == len(df) == 12  # 2 families x 3 n x 2 reps: every dataset has a row
    by_n = {n: g for n, g in disk.groupby("n")}
    assert (by_n[80]["status"] == "ok").all() and np.isfinite(by_n[80]["mi"]).all()
    assert (by_n[47]["status"] == "failed").all()
    if label == "flaky_test_only":
        assert by_n[47]["error"].str.contains("RuntimeError: deliberate failure for n = 47").all()
        assert (by_n[30]["status"] == "failed").all()
        assert by_n[30]["error"].str.contains("non-finite estimate nan").all()
        assert by_n[30]["mi"].isna().all()
    else:  # the batch failed: the runner fell back to one dataset at a time
        assert by_n[47]["error"].str.contains("KeyError: 'deliberate KeyError for n = 47'").all()
        assert (by_n[30]["status"] == "ok").all()
        # the fallback's results keep why the batched call failed
        assert by_n[30]["info"].str.contains("RuntimeError: the whole batch failed").all()
    from benchmarks.evaluate import collect

    assert len(collect({("c", label, 0): out}, {"c": SPEC})) == 12  # complete for the evaluation


def test_failed_row_keeps_the_quantity_the_estimator_measures():
    """InfoNet measures sliced MI on multi-dimensional data: its failures there (a failed
    estimate, invalid input, an exception) must be counted against that variant, not plain MI."""
    import estimators
    from benchmarks.runner import _quantity, _row

    infonet = estimators.get("infonet")
    rec = {
        "id": "a",
        "split": "imd",
        "family": "f",
        "n": 50,
        "dx": 3,
        "dy": 3,
        "rep": 0,
        "true_mi": 1.0,
        "quantity": "mi",
    }
    assert _quantity(infonet, rec) == "sliced_mi" and _quantity(infonet, dict(rec, dx=1, dy=1)) == "mi"
    assert _quantity(estimators.get("ksg"), rec) == "mi"
    failed = _row(rec, Estimate.failed("diverged"), None, _quantity(infonet, rec))
    assert failed["status"] == "failed" and failed["quantity"] == "sliced_mi"
    assert _row(rec, None, "invalid input: too few rows", "sliced_mi")["quantity"] == "sliced_mi"
    assert _row(rec, Estimate(mi=0.3, info={"quantity": "sliced_mi"}), None)["quantity"] == "sliced_mi"


def test_invalid_dataset_in_a_shard_is_recorded(tmp_path):
    # ksg with k = 40 needs 41 rows: the n = 30 datasets are invalid input, the rest run.
    shard = tmp_path / "shard-000.npz"
    build_shard(SPEC, 0, shard)
    df = run_shard("ksg40", {"estimator": "ksg", "params": {"k": 40}}, shard, "c", tmp_path / "e.csv", progress=False)
    failed = df[df["status"] == "failed"]
    assert set(failed["n"]) == {30} and failed["error"].str.startswith("invalid input: too few rows").all()
    assert (df.loc[df["n"] > 41, "status"] == "ok").all()


# -- kill the smoke DAG mid-way and resume -------------------------------------------
# SIGKILL by default (the hard case: no cleanup, the lock stays); MIST_KILL_SIGNAL=TERM
# checks the graceful path too.
KILL_SIGNAL = getattr(signal, "SIG" + os.environ.get("MIST_KILL_SIGNAL", "KILL").upper().removeprefix("SIG"))


def _snakemake() -> list[str]:
    exe = shutil.which("snakemake")
    return [exe] if exe else [sys.executable, "-m", "snakemake"]


def _digest(root: Path) -> dict[str, tuple[str, int]]:
    """{relative path: (sha256, mtime_ns)} of the visible files (logs excluded)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts) and rel.parts[0] != "logs":
            out[str(rel)] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out


def _jobs(log: str) -> dict[int, tuple[str, list[str]]]:
    """{jobid: (rule, outputs)} of the jobs a Snakemake run started, from its log."""
    jobs = {}
    for m in re.finditer(r"^(?:local)?rule (\w+):\n((?:    .*\n)*)", log, flags=re.M):
        body = m.group(2)
        jid = re.search(r"^    jobid: (\d+)$", body, flags=re.M)
        out = re.search(r"^    output: (.*)$", body, flags=re.M)
        if jid:
            jobs[int(jid.group(1))] = (m.group(1), [o.strip() for o in out.group(1).split(",")] if out else [])
    return jobs


def _finished(log: str) -> set[int]:
    return {int(j) for j in re.findall(r"^Finished jobid: (\d+)", log, flags=re.M)}


def _check_complete(results: Path, smoke: dict) -> None:
    """Every visible corpus shard or estimate file is complete (atomic writes: none is half)."""
    from benchmarks.evaluate import expected_ids
    from benchmarks.shards import read_meta

    for corpus, spec in smoke["corpora"].items():
        ids = expected_ids(spec)
        for p in (results / "corpora" / corpus).glob("shard-*.npz"):
            shard = int(p.stem.split("-")[1])
            assert [r["id"] for r in read_meta(p)] == ids[shard], f"incomplete corpus shard {p}"
        for p in (results / "estimates" / corpus).glob("*/shard-*.csv"):
            shard = int(p.stem.split("-")[1])
            df = pd.read_csv(p, dtype={"id": str})
            assert sorted(df["id"]) == sorted(ids[shard]), f"incomplete estimate file {p}"


@pytest.mark.slow
def test_smoke_dag_killed_midway_resumes_and_keeps_finished_outputs(tmp_path):
    import yaml

    smoke = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    work, results = tmp_path / "work", tmp_path / "results"
    work.mkdir()
    # Own working directory: Snakemake's locks and metadata stay out of the shared checkout.
    cmd = _snakemake() + [
        "-s",
        str(ROOT / "Snakefile"),
        "-d",
        str(work),
        "--cores",
        "1",
        "--configfile",
        str(ROOT / "config" / "smoke.yaml"),
        "--config",
        f"results={results}",
        "--rerun-incomplete",
        "--nocolor",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    n_est = sum(int(smoke["corpora"][c]["shards"]) for e in smoke["estimators"].values() for c in e["corpora"])
    first_log = tmp_path / "first.log"
    with open(first_log, "w") as log:
        proc = subprocess.Popen(cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            # Kill once two estimate jobs have finished and a third has been running for a
            # moment: the kill then lands inside an estimate job, not between two jobs.
            deadline, started = time.time() + 400, None
            while time.time() < deadline and proc.poll() is None:
                text = first_log.read_text()
                jobs, fin = _jobs(text), _finished(text)
                running = [j for j in set(jobs) - fin if jobs[j][0] == "estimate"]
                if started is None and sum(jobs[j][0] == "estimate" for j in fin if j in jobs) >= 2 and running:
                    started = time.time()
                if started is not None and time.time() - started > 1.5:
                    break
                time.sleep(0.2)
            assert proc.poll() is None, (
                "the DAG finished (or failed) before it could be killed:\n" + first_log.read_text()[-3000:]
            )
            assert time.time() < deadline, "no third estimate job started in time"
            os.killpg(proc.pid, KILL_SIGNAL)  # snakemake and its running job (SIGKILL: no cleanup)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = first_log.read_text()
    jobs, fin = _jobs(text), _finished(text)
    in_flight = {j: jobs[j] for j in set(jobs) - fin}
    finished_outputs = sorted(str(Path(o).relative_to(results)) for j in fin if j in jobs for o in jobs[j][1])
    before = _digest(results)
    hidden = sorted(str(p.relative_to(results)) for p in results.rglob(".*") if p.is_file())
    _check_complete(results, smoke)  # atomic writes: whatever is visible is whole
    assert set(finished_outputs) <= set(before), "a finished job's output is missing"
    assert sum(k.startswith("estimates/") for k in finished_outputs) >= 2
    # The kill lands before the evaluation of the estimates (rules independent of them, such as the
    # CMI and independence summaries, may already have written their tables: the scheduler's order).
    assert not any((results / "tables" / f"{t}.csv").exists() for t in ("mse_by_nbin", "accuracy", "claims"))

    # SIGKILL leaves Snakemake's lock behind: unlock (as docs/benchmark.md says), then rerun.
    subprocess.run(cmd + ["--unlock"], cwd=work, env=env, check=True, capture_output=True, text=True)
    second = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    after = _digest(results)

    log2 = second.stdout + second.stderr
    redone = sorted(str(Path(o).relative_to(results)) for rule, outs in _jobs(log2).values() for o in outs)
    changed = [k for k in finished_outputs if after.get(k) != before[k]]
    assert not changed, f"outputs finished before the kill were rewritten or lost by the rerun: {changed}"
    assert not set(redone) & set(finished_outputs), "a job finished before the kill was redone"
    unfinished = {str(Path(o).relative_to(results)) for rule, outs in in_flight.values() for o in outs}
    assert unfinished <= set(redone), f"a job killed in flight was not redone: {unfinished - set(redone)}"
    # Everything is there now, and nothing is left to do.
    _check_complete(results, smoke)
    assert len(list((results / "estimates").glob("*/*/shard-*.csv"))) == n_est
    for sub, ext in (
        ("tables", "*.csv"),
        ("tables", "*.md"),
        ("tables", "*.tex"),
        ("plots", "*.png"),
        ("plots", "*.pdf"),
    ):
        assert list((results / sub).glob(ext)), f"no {sub}/{ext} after the rerun"
    dry = subprocess.run(cmd + ["--dry-run"], cwd=work, env=env, capture_output=True, text=True)
    assert "Nothing to be done" in dry.stdout + dry.stderr

    summary = {
        "signal": KILL_SIGNAL.name,
        "killed_in_flight": {f"{r} (job {j})": outs for j, (r, outs) in in_flight.items()},
        "kept_byte_identical_same_mtime": finished_outputs,
        "visible_but_unregistered_at_kill": sorted(set(before) - set(finished_outputs)),
        "redone_after_kill": redone,
        "hidden_temporaries_left_by_kill": hidden,
    }
    print("\nRESILIENCE SUMMARY " + json.dumps(summary, indent=1))
    report = os.environ.get("MIST_RESILIENCE_REPORT")
    if report:
        Path(report).write_text(json.dumps(summary, indent=1))
