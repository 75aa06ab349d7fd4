#!/usr/bin/env bash
# Run the smoke config through a real SLURM (see setup_local_slurm.sh) with the SLURM profile.
#
#   tests/slurm/run_smoke_on_slurm.sh [OUT_DIR]      # default /tmp/mist-slurm-run
#
# Every job is an sbatch submission; the job IDs, their states and the final tables are
# printed at the end. --jobs 2 and one thread per estimate keep the real load low on a
# small machine (the profile's per-rule cpus/mem/runtime are still what sbatch is asked for).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-/tmp/mist-slurm-run}
export USER=${USER:-$(id -un)}   # the plugin reads $USER (unset in some containers)
export SLURM_CONF=${SLURM_CONF:-/tmp/mist-slurm/slurm.conf}
mkdir -p "$OUT/work"

sinfo >/dev/null || { echo "no SLURM: run tests/slurm/setup_local_slurm.sh first" >&2; exit 2; }
start=$(date +%s)
snakemake -s "$ROOT/Snakefile" -d "$OUT/work" \
  --workflow-profile "$ROOT/profiles/slurm" \
  --configfile "$ROOT/config/smoke.yaml" --config results="$OUT/results" \
  --jobs 2 --set-threads estimate=1 --nocolor 2>&1 | tee "$OUT/snakemake.log"
echo "wall time: $(( $(date +%s) - start )) s"
echo "--- SLURM jobs of this run (sacct, through slurmdbd) ---"
sacct -X --starttime "$(date -d @"$start" +%Y-%m-%dT%H:%M:%S)" \
  --format=JobID,JobName%36,Partition,AllocCPUS,ReqMem,Timelimit,State,ExitCode,Elapsed || true
echo "--- submissions ---"
grep -E "Job [0-9]+ has been submitted with SLURM jobid" "$OUT/snakemake.log" || true
echo "--- outputs ---"
ls "$OUT/results/tables" | head -40
