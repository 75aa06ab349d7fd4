"""Snakemake script: metrics, tables and plots (logic in benchmarks.evaluate)."""
import json
from pathlib import Path

from benchmarks.evaluate import collect, evaluate, write_manifest
from estimators.atomic import write_text

sm = snakemake  # noqa: F821
files = {tuple(k): v for k, v in sm.params.files.items()} if isinstance(sm.params.files, dict) else {}
df = collect(files, sm.params.corpora)
written = evaluate(df, sm.params.out, sm.params.evaluation)
cfg_path = Path(sm.params.out) / "config_used.json"
write_text(cfg_path, json.dumps(sm.params.config, indent=2, sort_keys=True, default=str))
written["config"] = [str(cfg_path)]
write_manifest(written, sm.output.manifest)
