"""Show that `--resources gpu=N` runs at most N GPU-declaring jobs at once (local executor).

    python tests/slurm/check_gpu_limit.py            # N = 1, then N = 2, on --cores 2
    python tests/slurm/check_gpu_limit.py --gpus 1 2 --cores 2

The config is the smoke corpus with both estimate entries declaring `gpu: 1` (they run on
CPU here: the declaration is what the scheduler sees). Only the estimate shards are built,
not the evaluation. The concurrency is read from Snakemake's own log: the order of its
"rule ... jobid" (start) and "Finished jobid" (end) lines, with their timestamps.
Exit status 1 if any run exceeded its N.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def config(results: Path) -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    cfg["results"] = str(results)
    for entry in cfg["estimators"].values():
        entry["gpu"] = 1
        entry.get("params", {}).pop("n_bootstrap", None)
    return cfg


def concurrency(log: str) -> tuple[int, int, list[str]]:
    """(most GPU jobs at once, most jobs at once, timeline) from a Snakemake log."""
    running: dict[int, bool] = {}
    most_gpu = most = 0
    timeline = []
    stamp = ""
    for block in re.split(r"\n(?=\[\w{3} \w{3} +\d+ [\d:]+ \d{4}\])", log):
        m = re.match(r"\[(\w{3} \w{3} +\d+ ([\d:]+) \d{4})\]\n", block)
        if m:
            stamp = m.group(2)
        start = re.search(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    jobid: (\d+)\n((?:    .*\n?)*)", block, re.M)
        if start:
            gpu = bool(re.search(r"resources: .*\bgpu=1\b", start.group(3)))
            running[int(start.group(2))] = gpu
            timeline.append(f"{stamp} start  job {start.group(2):>2} {start.group(1)}{' [gpu=1]' if gpu else ''}")
        for jid in re.findall(r"^Finished jobid: (\d+)", block, re.M):
            gpu = running.pop(int(jid), False)
            timeline.append(f"{stamp} finish job {jid:>2}{' [gpu=1]' if gpu else ''}")
        most_gpu = max(most_gpu, sum(running.values()))
        most = max(most, len(running))
    return most_gpu, most, timeline


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="gpu_limit_"))
    results, work = tmp / "results", tmp / "work"
    work.mkdir()
    cfg_path = tmp / "gpu.yaml"
    cfg = config(results)
    cfg_path.write_text(yaml.safe_dump(cfg))
    targets = [
        str(results / "estimates" / c / label / f"shard-{s:03d}.csv")
        for label, e in cfg["estimators"].items()
        for c in e["corpora"]
        for s in range(int(cfg["corpora"][c]["shards"]))
    ]
    exe = shutil.which("snakemake") or "snakemake"
    bad = 0
    for i, n in enumerate(args.gpus):
        cmd = [
            exe,
            *targets,
            "-s",
            str(ROOT / "Snakefile"),
            "-d",
            str(work),
            "--cores",
            str(args.cores),
            "--resources",
            f"gpu={n}",
            "--configfile",
            str(cfg_path),
            "--nocolor",
        ]
        if i:
            cmd += ["--forcerun", "estimate"]  # corpora are built; redo only the GPU jobs
        print("$ snakemake <the estimate targets> " + " ".join(cmd[1 + len(targets) :]), flush=True)
        run = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        log = run.stdout + run.stderr
        if run.returncode:
            print(log[-4000:])
            return 2
        most_gpu, most, timeline = concurrency(log)
        print("\n".join("    " + t for t in timeline))
        verdict = "OK" if most_gpu <= n else "EXCEEDED"
        print(
            f"--resources gpu={n}, --cores {args.cores}: at most {most_gpu} gpu=1 job(s) at once "
            f"(at most {most} job(s) of any kind) -> {verdict}\n",
            flush=True,
        )
        bad += most_gpu > n
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
