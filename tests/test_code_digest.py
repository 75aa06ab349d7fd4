"""The code digests that make the DAG rerun a rule when a module it runs changes."""

import hashlib
from pathlib import Path

import pytest

from estimators.code_digest import _imported, code_digest, code_files

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "workflow" / "scripts"


def rel(files):
    return {str(f.relative_to(ROOT)) for f in files}


def test_corpus_rule_covers_the_families_and_nothing_of_the_estimators():
    files = rel(code_files(SCRIPTS / "build_corpus_shard.py"))
    assert {
        "benchmarks/corpora.py",
        "estimators/synthetic/families.py",
        "estimators/synthetic/transforms.py",
        "estimators/synthetic/hard_families.py",
        "workflow/scripts/build_corpus_shard.py",
    } <= files
    assert not any(f.startswith("estimators/mist") or f == "estimators/ksg.py" for f in files)


def test_an_estimate_covers_its_own_estimator_only():
    ksg = rel(code_files(SCRIPTS / "estimate_shard.py", ["estimators.ksg"]))
    assert {"estimators/ksg.py", "estimators/base.py", "estimators/validation.py", "benchmarks/runner.py"} <= ksg
    assert "estimators/mine.py" not in ksg and "estimators/mist/model.py" not in ksg
    mine = rel(code_files(SCRIPTS / "estimate_shard.py", ["estimators.mine"]))
    # MINE's critic and training loop live in a subpackage, reached through `from ... import`.
    assert {"estimators/mine.py", "estimators/neural/critics.py", "estimators/neural/training.py"} <= mine
    assert "estimators/minde.py" not in mine and "estimators/mist/model.py" not in mine


def test_training_rule_covers_the_model_and_the_meta_dataset():
    files = rel(code_files(SCRIPTS / "train_mist.py"))
    assert {
        "estimators/mist/training.py",
        "estimators/mist/model.py",
        "estimators/mist/features.py",
        "estimators/synthetic/metadataset.py",
        "estimators/synthetic/families.py",
    } <= files
    # The library trains from its own layer: a table metric or the corpus builder never retrains a model.
    # (The job-log helper is the one benchmark-layer module a workflow script needs.)
    assert {f for f in files if f.startswith(("benchmarks/", "devbench/"))} <= {
        "benchmarks/__init__.py",
        "benchmarks/joblog.py",
    }


def test_shard_rule_covers_the_generator_not_the_training_code():
    # A training-code edit must not rebuild the meta-dataset (306 jobs at paper scale).
    files = rel(code_files(SCRIPTS / "build_metadataset_shard.py"))
    assert {"estimators/synthetic/metadataset.py", "estimators/synthetic/families.py"} <= files
    assert not {f for f in files if f.startswith("estimators/mist/")}


def test_digest_is_a_hash_of_the_covered_files_contents():
    files = code_files(SCRIPTS / "tables.py")
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes() + b"\0")
    assert code_digest(SCRIPTS / "tables.py") == h.hexdigest()[:16]
    assert code_digest(SCRIPTS / "tables.py") != code_digest(SCRIPTS / "plots.py")


def test_imports_inside_functions_and_relative_imports_are_followed(tmp_path):
    src = tmp_path / "fake.py"
    src.write_text(
        "from .features import FeatureConfig\n"
        "def f():\n    from estimators.synthetic import metadataset\n    import estimators.ksg\n"
    )
    names = _imported(src, "estimators.mist.fake")
    assert {"estimators.mist.features", "estimators.synthetic.metadataset", "estimators.ksg"} <= names


def test_a_module_outside_the_project_covers_its_own_file(tmp_path, monkeypatch):
    (tmp_path / "my_adapter.py").write_text("import estimators.ksg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    files = code_files(None, ["my_adapter"])
    assert tmp_path / "my_adapter.py" in files and ROOT / "estimators" / "ksg.py" in files
    with pytest.raises(ValueError, match="no_such_module"):
        code_files(None, ["no_such_module"])
