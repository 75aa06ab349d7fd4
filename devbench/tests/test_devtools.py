"""Tests of the developer tools in `devbench/` (not installed; run from a checkout)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "estimators" / "weights"


def test_rule_times_sums_jobs_per_rule(tmp_path):
    from devbench.rule_times import rule_times

    tsv = "s\th:m:s\tmax_rss\tcpu_time\n{}\t0:00:01\t1\t{}\n"
    for rel, s in (("estimate/extended/mist/shard-000.tsv", 2.0), ("estimate/extended/mist/shard-001.tsv", 3.0),
                   ("corpus/standard/shard-000.tsv", 1.5), ("tables.tsv", 0.5)):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(tsv.format(s, s / 2))
    df = rule_times(tmp_path)
    assert df.loc["estimate/extended/mist", "jobs"] == 2 and df.loc["estimate/extended/mist", "wall_s"] == 5.0
    assert set(df.index) == {"estimate/extended/mist", "corpus/standard", "tables"}
    with pytest.raises(FileNotFoundError, match="run the DAG first"):
        rule_times(tmp_path / "empty")


def test_reference_copy_needs_the_headline_tables_not_the_ablation(tmp_path):
    from devbench.reference import OPTIONAL, TABLES, copy_reference

    run = tmp_path / "run"
    (run / "tables").mkdir(parents=True)
    (run / "plots").mkdir()
    (run / "plots" / "mse_vs_n.png").write_bytes(b"\x89PNG")
    (run / "config_used.yaml").write_text("seed: 1\n")
    for t in TABLES:
        if t not in OPTIONAL:  # a paper-scale run has no ablation block
            for ext in ("csv", "md"):
                (run / "tables" / f"{t}.{ext}").write_text("x\n")
    written = copy_reference(run, tmp_path / "ref")
    assert (tmp_path / "ref" / "mse_by_nbin.csv").is_file() and not (tmp_path / "ref" / "mist_ablation.csv").exists()
    assert len(written) == 2 * (len(TABLES) - len(OPTIONAL)) + 2
    (run / "tables" / "mse_by_nbin.csv").unlink()
    with pytest.raises(FileNotFoundError, match="mse_by_nbin.csv"):
        copy_reference(run, tmp_path / "ref2")


def test_readme_tables_are_the_reference_run(tmp_path):
    """The README's MSE tables are exactly what `--readme` writes from results/reference (so a new
    reference run cannot leave stale numbers there), and a changed cell changes the README."""
    from devbench.reference import update_readme

    root = Path(__file__).resolve().parents[2]
    readme = tmp_path / "README.md"
    readme.write_text((root / "README.md").read_text())
    update_readme(readme, root / "results" / "reference" / "mse_by_nbin.csv")
    assert readme.read_text() == (root / "README.md").read_text()
    mse = pd.read_csv(root / "results" / "reference" / "mse_by_nbin.csv")
    row = (mse.corpus == "extended") & (mse.split == "imd") & (mse.estimator == "ksg")
    mse.loc[row, "[10,100]"] = 1234.0
    mse.to_csv(tmp_path / "changed.csv", index=False)
    update_readme(readme, tmp_path / "changed.csv")
    assert "| imd | ksg | 1234 |" in readme.read_text()
    mse[~row].to_csv(tmp_path / "lost.csv", index=False)
    with pytest.raises(ValueError, match=r"extended/imd MSE rows for \['ksg'\]"):
        update_readme(readme, tmp_path / "lost.csv")


def test_fresh_validation_scores_checkpoints_by_their_card_kind():
    from devbench.mist_bench import validate

    df = validate([WEIGHTS_DIR / "mist.safetensors", WEIGHTS_DIR / "mist_qr.safetensors"], val_size=30, val_seed=7)
    assert list(df["kind"]) == ["mist", "mist_qr"]
    assert np.isfinite(df["mse"]).all() and (df["mse"] > 0).all()
    assert df["mse"].iloc[0] != df["mse"].iloc[1]  # two different models, scored on the same draw
