"""Tests of the developer tools in `devbench/` (not installed; run from a checkout)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS_DIR = ROOT / "estimators" / "weights"


def test_rule_times_sums_jobs_per_rule(tmp_path):
    from devbench.rule_times import rule_times

    tsv = "s\th:m:s\tmax_rss\tcpu_time\n{}\t0:00:01\t1\t{}\n"
    for rel, s in (
        ("estimate/extended/mist/shard-000.tsv", 2.0),
        ("estimate/extended/mist/shard-001.tsv", 3.0),
        ("corpus/standard/shard-000.tsv", 1.5),
        ("tables.tsv", 0.5),
    ):
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


def test_generated_documents_are_the_reference_run():
    """docs/results.md and the README's headline table are exactly what `python -m devbench.reference
    --docs` writes from results/reference/: a new reference run cannot leave a stale number there."""
    from devbench.reference import render_readme, results_markdown

    ref = ROOT / "results" / "reference"
    assert (ROOT / "docs" / "results.md").read_text() == results_markdown(ref), (
        "docs/results.md is stale: run `python -m devbench.reference --docs`"
    )
    readme = (ROOT / "README.md").read_text()
    assert render_readme(readme, pd.read_csv(ref / "mse_by_nbin.csv")) == readme, (
        "the README's headline table is stale: run `python -m devbench.reference --docs`"
    )


def test_a_changed_reference_number_changes_both_documents(tmp_path):
    from devbench.reference import main, render_readme, results_markdown

    ref = tmp_path / "reference"
    shutil.copytree(ROOT / "results" / "reference", ref)
    readme, doc = tmp_path / "README.md", tmp_path / "results.md"
    readme.write_text((ROOT / "README.md").read_text())
    mse = pd.read_csv(ref / "mse_by_nbin.csv")
    row = (mse.corpus == "extended") & (mse.split == "imd") & (mse.estimator == "ksg")
    mse.loc[row, "[10,100]"] = 1234.0
    mse.to_csv(ref / "mse_by_nbin.csv", index=False)
    main(["--docs", "--out", str(ref), "--readme", str(readme), "--results-md", str(doc)])
    assert "| ksg | 1234 | 63.6 |" in readme.read_text() and readme.read_text() != (ROOT / "README.md").read_text()
    assert "| extended | imd | ksg | 1234 | 63.6 |" in doc.read_text()
    assert doc.read_text() == results_markdown(ref)
    # the rest of the README is untouched
    before, after = (ROOT / "README.md").read_text().splitlines(), readme.read_text().splitlines()
    assert len(before) == len(after) and sum(a != b for a, b in zip(before, after, strict=True)) == 1
    # a lost headline row, an uncaptioned table and missing markers are errors, not silent omissions
    with pytest.raises(ValueError, match=r"extended/imd MSE row for 'ksg'"):
        render_readme(readme.read_text(), mse[~row])
    (ref / "new_table.csv").write_text("a\n1\n")
    with pytest.raises(ValueError, match="no caption for .*new_table.csv"):
        results_markdown(ref)
    with pytest.raises(ValueError, match="markers"):
        render_readme("# no table here\n", mse)


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# What a reader cannot follow: issue numbers, commit hashes, documents that are not shipped.
UNFOLLOWABLE = {
    "an issue number": re.compile(r"\bissues?\s*#?\s*\d", re.I),
    "a commit hash": re.compile(
        r"\b(?:git\s+[a-z-]+|commit|revision)\b[^\n]{0,40}?\b(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b"
        r"|\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}:\S",
        re.I,
    ),
    "REFERENCE.md": re.compile(r"REFERENCE(?:\.md|\s*§)"),
}


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_documents_name_nothing_a_reader_cannot_follow(path):
    text = path.read_text()
    found = [f"{what}: {m.group(0)!r}" for what, rx in UNFOLLOWABLE.items() for m in rx.finditer(text)]
    assert not found, found


def test_the_unfollowable_patterns_catch_what_they_should():
    bad = [
        "see issue 3",
        "Issue #12",
        "git show 28db398:estimators/weights/mist.safetensors",
        "commit fb64293",
        "REFERENCE.md",
        "REFERENCE §1",
    ]
    good = ["the 2,000 datasets", "issues of scale", "sha256 of the weights", "seed 1234567", "git show HEAD"]
    hit = lambda t: any(rx.search(t) for rx in UNFOLLOWABLE.values())  # noqa: E731
    assert all(hit(t) for t in bad) and not any(hit(t) for t in good)


def test_fresh_validation_scores_checkpoints_by_their_card_kind():
    from devbench.mist_bench import validate

    df = validate([WEIGHTS_DIR / "mist.safetensors", WEIGHTS_DIR / "mist_qr.safetensors"], val_size=30, val_seed=7)
    assert list(df["kind"]) == ["mist", "mist_qr"]
    assert np.isfinite(df["mse"]).all() and (df["mse"] > 0).all()
    assert df["mse"].iloc[0] != df["mse"].iloc[1]  # two different models, scored on the same draw


def test_matrix_bench_scores_against_the_known_pairwise_mi():
    from devbench.matrix_bench import graphical_model, pairwise_mi, run

    corr = graphical_model(8, seed=0)
    assert np.allclose(np.diag(corr), 1) and np.all(np.linalg.eigvalsh(corr) > 0)
    truth = pairwise_mi(corr)
    assert np.isnan(np.diag(truth)).all() and np.nanmin(truth) >= 0
    df = run(p=6, n=200, seed=0, methods=["ksg:5", "sklearn"])
    assert list(df["method"]) == ["ksg:5", "sklearn"] and (df["failed"] == 0).all()
    assert (df["mae"] < 0.2).all() and df.loc[0, "seconds_vs_ksg5"] == 1.0


def test_permutation_speed_times_every_method():
    from devbench.permutation_speed import run

    df = run(n=40, dims=[1], permutations=9, repeats=1, workers=[1])
    assert list(df["method"]) == ["ksg", "mist", "mist_qr"] and (df["median_s"] > 0).all()


def test_module_bench_reports_the_gap_to_estimate():
    from devbench.module_bench import agreement

    rows = agreement("mist", [0.0, 0.02], size=6, val_seed=5)
    assert [r["temperature"] for r in rows] == [0.0, 0.02] and rows[0]["datasets"] == 6
    assert rows[0]["median"] < 0.01 and 0 < rows[1]["max"]  # hard ranks: estimate() itself


def test_mixed_dims_recipe_is_the_dags_mist_but_for_data_and_steps():
    import yaml

    from devbench.mixed_dims import ROOT, recipe

    mist = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["models"]["mist"]["train"]
    p = recipe(7)
    assert p["max_steps"] == 7 and p["data"]["shards"] == 0 and p["data"]["beyond_frac"] == 0.0
    assert p["features"] == mist["features"] and p["model"] == mist["model"] and p["lr"] == mist["lr"]
