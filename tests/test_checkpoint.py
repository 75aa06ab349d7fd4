"""Checkpoints: safetensors + a JSON card with the weights' SHA-256 (estimators.checkpoint).

- Loading never executes code from the file: a pickle posing as a checkpoint, even with a
  card whose checksum matches it, is refused and its payload never runs; and no loader in
  the packages can unpickle (static scan).
- A truncated or tampered weight file is detected by the card's SHA-256, with a clear error.
- A missing or broken checkpoint is an error, never random weights, also through the
  registered estimators that take `weights=`.
"""

from __future__ import annotations

import ast
import hashlib
import json
import pickle
from pathlib import Path

import pytest
import torch

import estimators
from estimators.checkpoint import CheckpointError, card_path, load_checkpoint, read_card, save_checkpoint
from estimators.registry import _REGISTRY
from estimators.testing import accepted_params

ROOT = Path(__file__).resolve().parent.parent


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))


@pytest.fixture
def ckpt(tmp_path):
    w = tmp_path / "net.safetensors"
    save_checkpoint(_model(0), w, {"model": "toy", "architecture": {"width": 8}})
    return w


def test_round_trip_restores_the_exact_weights(ckpt):
    card = json.loads(card_path(ckpt).read_text())
    assert card["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert card["weights_file"] == ckpt.name and card["n_parameters"] == 3 * 8 + 8 + 8 + 1
    fresh = _model(1)
    got = load_checkpoint(fresh, ckpt)
    assert got["model"] == "toy"
    for a, b in zip(_model(0).state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    assert not list(ckpt.parent.glob(".*tmp*")), "atomic write left a temporary file behind"


def test_truncated_weights_are_detected(ckpt):
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="does not match the SHA-256 in its card"):
        load_checkpoint(_model(), ckpt)


def test_one_flipped_byte_in_the_tensor_data_is_detected(ckpt):
    data = bytearray(ckpt.read_bytes())
    data[-3] ^= 0x01  # inside the last tensor's raw bytes: still a valid safetensors file
    ckpt.write_bytes(bytes(data))
    from safetensors.torch import load_file

    load_file(str(ckpt))  # the format itself cannot tell: only the checksum can
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(_model(), ckpt)


def test_weights_swapped_for_another_valid_checkpoint_are_detected(ckpt, tmp_path):
    other = tmp_path / "other.safetensors"
    save_checkpoint(_model(7), other, {"model": "toy"})
    ckpt.write_bytes(other.read_bytes())  # valid file, right shapes, wrong card
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(_model(), ckpt)


def test_tampered_card_checksum_is_detected(ckpt):
    card = json.loads(card_path(ckpt).read_text())
    card["sha256"] = "0" * 64
    card_path(ckpt).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="SHA-256"):
        read_card(ckpt)


@pytest.mark.parametrize(
    "damage, msg",
    [
        ("no_weights", "weights not found"),
        ("no_card", "card not found"),
        ("bad_json", "not valid JSON"),
        ("no_sha", "SHA-256"),
    ],
)
def test_missing_or_broken_parts_are_clear_errors(ckpt, damage, msg):
    if damage == "no_weights":
        ckpt.unlink()
    elif damage == "no_card":
        card_path(ckpt).unlink()
    elif damage == "bad_json":
        card_path(ckpt).write_text('{"sha256": ')
    else:
        card = json.loads(card_path(ckpt).read_text())
        del card["sha256"]
        card_path(ckpt).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=msg):
        load_checkpoint(_model(), ckpt)
    assert issubclass(CheckpointError, ValueError)


def test_checkpoint_that_does_not_fit_the_model_is_an_error(ckpt):
    wider = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    with pytest.raises(CheckpointError, match="has shape"):
        load_checkpoint(wider, ckpt)
    with pytest.raises(CheckpointError, match="does not fit the model"):
        load_checkpoint(torch.nn.Linear(3, 8), ckpt)


class _Payload:
    """Unpickling this runs `open(marker, "w")`: proof that code from the file executed."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickle_checkpoint(tmp_path: Path, kind: str, card: dict) -> tuple[Path, Path]:
    marker = tmp_path / "PWNED"
    w = tmp_path / f"evil_{kind}.safetensors"
    if kind == "pickle":
        w.write_bytes(pickle.dumps({"0.weight": _Payload(str(marker))}))
    else:  # torch.save's zip format, which torch.load(weights_only=False) would unpickle
        torch.save({"0.weight": _Payload(str(marker))}, w)
    # A card whose checksum *matches* the malicious file: the checksum alone would not stop it.
    card = {**card, "sha256": hashlib.sha256(w.read_bytes()).hexdigest()}
    card_path(w).write_text(json.dumps(card))
    return w, marker


@pytest.mark.parametrize("kind", ["pickle", "torch_save"])
def test_a_pickle_posing_as_a_checkpoint_is_refused_and_never_runs(tmp_path, kind):
    w, marker = _pickle_checkpoint(tmp_path, kind, {"model": "toy"})
    # Sanity: the payload is live (unpickling it really would create the marker).
    pickle.loads(pickle.dumps(_Payload(str(tmp_path / "probe"))))
    assert (tmp_path / "probe").exists()
    with pytest.raises(CheckpointError, match="could not read checkpoint"):
        load_checkpoint(_model(), w)
    assert not marker.exists(), "loading executed code from the checkpoint file"


def _weights_estimators() -> list[str]:
    return [n for n in estimators.available() if "weights" in accepted_params(_REGISTRY[n])]


@pytest.mark.parametrize("name", _weights_estimators() or ["(none registered)"])
def test_estimators_refuse_missing_or_malicious_weights(name, tmp_path):
    if name not in _REGISTRY:
        pytest.skip("no registered estimator takes weights=")
    with pytest.raises(CheckpointError, match="not found"):
        estimators.get(name, weights=str(tmp_path / "absent.safetensors"))
    card = {"model": name, "kind": name, "architecture": {}, "features": {}}
    w, marker = _pickle_checkpoint(tmp_path, "torch_save", card)
    with pytest.raises(ValueError):  # CheckpointError (or the card's architecture is rejected first)
        estimators.get(name, weights=str(w))
    assert not marker.exists()


# -- static scan: no unpickling loader anywhere in the packages -------------------------
def _unsafe_calls(source: str) -> list[str]:
    bad = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f"{getattr(getattr(f, 'value', None), 'id', '')}.{getattr(f, 'attr', getattr(f, 'id', ''))}"
        kw = {k.arg: k.value for k in node.keywords}
        const = lambda v: isinstance(v, ast.Constant) and v.value  # noqa: E731
        if name in (
            "pickle.load",
            "pickle.loads",
            "joblib.load",
            "dill.load",
            "cloudpickle.load",
            "pd.read_pickle",
            "pandas.read_pickle",
            "torch.load",
        ) or name.endswith(".read_pickle"):
            if name == "torch.load" and const(kw.get("weights_only")) is True:
                continue
            bad.append(f"line {node.lineno}: {name}")
        if name in ("np.load", "numpy.load") and "allow_pickle" in kw and const(kw["allow_pickle"]):
            bad.append(f"line {node.lineno}: {name}(allow_pickle=True)")
    return bad


def test_scanner_finds_unsafe_loaders():
    assert _unsafe_calls("import torch\ntorch.load('a')\n") == ["line 2: torch.load"]
    assert _unsafe_calls("torch.load('a', weights_only=True)") == []
    assert _unsafe_calls("np.load('a', allow_pickle=True)") and not _unsafe_calls("np.load('a')")
    assert _unsafe_calls("import pickle\npickle.loads(b)")


def test_no_package_code_can_unpickle():
    found = {}
    for pkg in ("estimators", "benchmarks", "workflow"):
        for path in (ROOT / pkg).rglob("*.py"):
            bad = _unsafe_calls(path.read_text())
            if bad:
                found[str(path.relative_to(ROOT))] = bad
    assert not found, f"loaders that can execute code from a file: {found}"
