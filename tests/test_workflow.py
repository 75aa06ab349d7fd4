"""End to end: the smoke config through snakemake in a temporary directory."""
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_smoke_dag(tmp_path):
    if shutil.which("snakemake") is None:
        pytest.fail("snakemake is not installed (it is a runtime dependency)")
    out, work = tmp_path / "results", tmp_path / "work"
    work.mkdir()
    # Own working directory: Snakemake's locks and metadata stay out of the checkout.
    cmd = ["snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work),
           "--configfile", str(ROOT / "config" / "smoke.yaml"), "--config", f"results={out}"]
    r = subprocess.run(cmd + ["--cores", "2", "-q"], cwd=work, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    mse = pd.read_csv(out / "tables" / "mse_by_nbin.csv")
    bins = [c for c in mse.columns if c.startswith(("[", "("))]
    assert len(mse) > 0 and bins
    assert np.isfinite(mse[bins].to_numpy(dtype=float)).all()
    for name in ("accuracy", "timing", "coverage", "summary_by_family", "failures_by_nbin"):
        for ext in ("csv", "md", "tex"):
            assert (out / "tables" / f"{name}.{ext}").is_file()
    assert (out / "plots" / "mse_vs_n.png").stat().st_size > 1000
    # Rules carry a digest of the code they run as a param; it must be stable across invocations,
    # or every run would redo the whole DAG.
    again = subprocess.run(cmd + ["-n"], cwd=work, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
    # The README's report command: every table and plot needs its caption file.
    report = subprocess.run(cmd + ["--report", str(out / "report.html")], cwd=work, capture_output=True,
                            text=True, timeout=300)
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    assert (out / "report.html").stat().st_size > 10_000


def test_bad_config_fails_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "config" / "smoke.yaml").read_text().replace("estimator: ksg", "estimator: kgs"))
    r = subprocess.run(["snakemake", "-n", "--configfile", str(bad), "--config", f"results={tmp_path}/r"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "estimators.ksg.estimator: unknown estimator 'kgs'" in r.stdout + r.stderr
    assert not (tmp_path / "r").exists()


def test_wrong_type_fails_schema(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "config" / "smoke.yaml").read_text().replace("shards: 2", "shards: two"))
    r = subprocess.run(["snakemake", "-n", "--configfile", str(bad)], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode != 0 and "shards" in r.stdout + r.stderr


def test_readme_slurm_command_plans_the_paper_dag():
    """The README's SLURM command, exactly as printed, with --dry-run appended."""
    import re
    import shlex

    readme = (ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(r"```bash\n(.*?)```", readme, re.S) if "profiles/slurm" in b]
    assert blocks, "README has no SLURM command block"
    cmd = shlex.split(blocks[0].replace("\\\n", " "))
    assert cmd[0] == "snakemake"
    r = subprocess.run(cmd + ["--dry-run", "--quiet", "rules"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def test_torch_estimators_ask_for_a_gpu_and_the_others_do_not(tmp_path):
    r = subprocess.run(["snakemake", "-n", "--config", f"results={tmp_path}/r"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    gpu = {}
    for job in r.stdout.split("\n\n"):
        w = re.search(r"wildcards: corpus=\w+, estimator=(\w+), shard", job)
        g = re.search(r"resources: .*\bgpu=(\d+)", job)
        if w and g:
            gpu.setdefault(w.group(1), set()).add(int(g.group(1)))
    assert gpu["ksg"] == {0} and gpu["gaussian"] == {0}
    assert all(gpu[e] == {1} for e in ("mine", "infonce", "minde_c", "mist", "mist_qr", "infonet")), gpu
