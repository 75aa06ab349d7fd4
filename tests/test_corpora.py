"""Corpora: determinism, sharding, stored ground truth."""

import hashlib

import numpy as np
import pytest

from benchmarks.corpora import build_shard, count, plan
from benchmarks.shards import iter_shard, read_meta
from estimators.synthetic.families import get_family

SPEC = {
    "seed": 11,
    "shards": 3,
    "blocks": [
        {"split": "imd", "n": {"linspace": [10, 100, 3]}, "per_cell": 2, "dims": {"random": [2, 8]}},
        {
            "split": "oomd",
            "families": ["multi_normal-sparse-halfcube", "multi_additive_noise-base"],
            "n": [30],
            "per_cell": 1,
            "dims": {"grid": [2, 4]},
        },
    ],
}


def _md5(p):
    return hashlib.md5(open(p, "rb").read()).hexdigest()


def test_plan_size_and_grid():
    items = plan(SPEC)
    assert count(SPEC) == len(items) == 6 * 3 * 2 + 2 * 2
    # one d per family in a random-dims block
    for fam in {i["family"] for i in items if i["split"] == "imd"}:
        assert len({i["dx"] for i in items if i["family"] == fam and i["split"] == "imd"}) == 1


def test_same_config_same_bytes(tmp_path):
    for s in range(3):
        a, b = tmp_path / f"a{s}.npz", tmp_path / f"b{s}.npz"
        build_shard(SPEC, s, a)
        build_shard(SPEC, s, b)
        assert _md5(a) == _md5(b)


def test_other_seed_other_data(tmp_path):
    build_shard(SPEC, 0, tmp_path / "a.npz")
    build_shard({**SPEC, "seed": 12}, 0, tmp_path / "b.npz")
    assert _md5(tmp_path / "a.npz") != _md5(tmp_path / "b.npz")


def test_shards_partition_the_corpus(tmp_path):
    ids = []
    for s in range(3):
        build_shard(SPEC, s, tmp_path / f"{s}.npz")
        ids += [r["id"] for r in read_meta(tmp_path / f"{s}.npz")]
    assert sorted(ids) == [i["id"] for i in plan(SPEC)]


def test_records_carry_everything_and_truth_reproduces(tmp_path):
    build_shard(SPEC, 1, tmp_path / "s.npz")
    for rec, x, y in iter_shard(tmp_path / "s.npz"):
        assert {"family", "split", "params", "n", "dx", "dy", "seed", "true_mi"} <= set(rec)
        assert x.shape == (rec["n"], rec["dx"]) and y.shape == (rec["n"], rec["dy"])
        dist = get_family(rec["family"]).draw(rec["dx"], rec["dy"], np.random.default_rng(rec["seed"]))
        assert dist.mi == pytest.approx(rec["true_mi"], abs=1e-12)
        assert dist.params == rec["params"]


def test_bad_shard_index(tmp_path):
    with pytest.raises(ValueError, match="out of range"):
        build_shard(SPEC, 3, tmp_path / "x.npz")


def test_bmi_corpus(tmp_path):
    spec = {"kind": "bmi", "seed": 0, "shards": 1, "n": [100], "tasks": ["1v1-normal-0.75"]}
    build_shard(spec, 0, tmp_path / "b.npz")
    ((rec, x, y),) = list(iter_shard(tmp_path / "b.npz"))
    assert rec["true_mi"] == pytest.approx(0.4133, abs=1e-3) and x.shape == (100, 1)
    with pytest.raises(ValueError, match="unknown BMI task"):
        build_shard({**spec, "tasks": ["nope"]}, 0, tmp_path / "c.npz")


def test_dims_start_at_each_familys_minimum():
    """The 2pair families need two columns: a d range or grid reaching 1 draws them from 2."""
    fams = ["multi_normal-2pair-base", "multi_normal-dense-base"]
    spec = {
        "seed": 4,
        "shards": 1,
        "blocks": [
            {"split": "imd", "families": fams, "n": [20], "dims": {"random": [1, 2]}},
            {"split": "dgrid_imd", "families": fams, "n": [20], "dims": {"grid": [1, 2]}},
        ],
    }
    items = plan(spec)
    two_pair = [(d["split"], d["dx"]) for d in items if "2pair" in d["family"]]
    assert two_pair == [("imd", 2), ("dgrid_imd", 2)]
    assert sorted(d["dx"] for d in items if d["family"] == fams[1] and d["split"] == "dgrid_imd") == [1, 2]
    bad = {
        "seed": 4,
        "shards": 1,
        "blocks": [{"split": "imd", "families": fams, "n": [20], "dims": {"random": [1, 1]}}],
    }
    with pytest.raises(ValueError, match="multi_normal-2pair-base needs d >= 2"):
        plan(bad)


@pytest.mark.parametrize(
    "n, message",
    [
        ([0, 50], "must be >= 2"),
        ([], "non-empty list"),
        ({"linspace": [10, 500, 2.9]}, "integer num"),
        ({"linspace": [10, 12, 5]}, "sample sizes repeat"),
        ([30, 30], "sample sizes repeat"),
    ],
)
def test_bad_sample_sizes_are_config_errors(n, message):
    from benchmarks.config import check

    spec = {"seed": 1, "shards": 1, "blocks": [{"split": "imd", "n": n}]}
    with pytest.raises(ValueError, match=message):
        plan(spec)
    with pytest.raises(ValueError, match="corpora.c: .*" + message):
        check({"corpora": {"c": spec}, "estimators": {}})


@pytest.mark.parametrize(
    "dims, message",
    [
        ({"random": [2, 4], "grid": [16]}, "exactly one of random, grid or fixed"),
        ({"size": [2, 4]}, "exactly one of"),
        ({"grid": [0]}, "block 'imd' has no datasets"),
    ],
)
def test_bad_dims_are_config_errors(dims, message):
    with pytest.raises(ValueError, match=message):
        plan({"seed": 1, "shards": 1, "blocks": [{"split": "imd", "n": [50], "dims": dims}]})


def test_bmi_corpus_tasks_are_distinct_and_not_empty():
    from benchmarks.corpora import _bmi_items

    for tasks in (["1v1-normal-0.75"] * 2, []):
        with pytest.raises(ValueError, match="distinct and not empty"):
            _bmi_items({"seed": 3, "n": [500], "tasks": tasks})
    with pytest.raises(ValueError, match="sample sizes repeat"):
        _bmi_items({"seed": 3, "n": [500, 500], "tasks": ["1v1-normal-0.75"]})


def test_same_bytes_whatever_the_blas_threads(tmp_path):
    from threadpoolctl import threadpool_limits

    spec = {"seed": 5, "shards": 1, "blocks": [{"split": "imd", "n": [500], "dims": {"fixed": [[32, 32]]}}]}
    for threads in (1, 2):
        with threadpool_limits(threads):
            build_shard(spec, 0, str(tmp_path / f"t{threads}.npz"))
    assert _md5(tmp_path / "t1.npz") == _md5(tmp_path / "t2.npz")


def test_unreadable_shards_name_the_file(tmp_path):
    spec = {"seed": 5, "shards": 1, "blocks": [{"split": "imd", "n": [20]}]}
    good = tmp_path / "good.npz"
    build_shard(spec, 0, str(good))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="cut.npz is not a readable corpus shard"):
        list(iter_shard(cut))
    other = tmp_path / "other.npz"
    np.savez(other, n=np.arange(3))  # e.g. a meta-dataset shard passed by mistake
    with pytest.raises(ValueError, match="other.npz is not a corpus shard"):
        read_meta(other)
