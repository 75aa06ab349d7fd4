"""Safe checkpoints: weights in safetensors plus a JSON card.

Loading never unpickles anything. The card records the architecture, training
spec, metrics and a SHA-256 of the weight file, so a truncated or tampered file
is detected before it is used. A missing or mismatched checkpoint is an error:
there is no path that returns random weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from estimators.atomic import atomic_path


class CheckpointError(ValueError):
    pass


def card_path(weights: str | os.PathLike) -> Path:
    return Path(weights).with_suffix(".json")


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def code_version() -> str:
    """The installed package's version and a digest of the library's own source files (not of
    whatever git repository happens to enclose the install)."""
    try:
        version = metadata.version("mist-bench")
    except metadata.PackageNotFoundError:
        version = "unknown"
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return f"{version}+src.{h.hexdigest()[:12]}"


def save_checkpoint(model: torch.nn.Module, weights: str | os.PathLike, card: dict[str, Any]) -> None:
    """Write weights then card, each atomically; the card carries the weights' hash."""
    weights = Path(weights)
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp))
    card = dict(card)
    card.setdefault("code_version", code_version())
    card["weights_file"] = weights.name
    card["sha256"] = sha256(weights)
    card["n_parameters"] = int(sum(v.numel() for v in state.values()))
    with atomic_path(card_path(weights)) as tmp:
        Path(tmp).write_text(json.dumps(card, indent=2, sort_keys=True))


def read_card(weights: str | os.PathLike) -> dict[str, Any]:
    weights = Path(weights)
    cp = card_path(weights)
    if not weights.is_file():
        raise CheckpointError(f"checkpoint weights not found: {weights}")
    if not cp.is_file():
        raise CheckpointError(f"checkpoint card not found: {cp} (needed next to {weights.name})")
    try:
        card = json.loads(cp.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"checkpoint card {cp} is not valid JSON: {err}") from None
    digest = sha256(weights)
    if card.get("sha256") != digest:
        raise CheckpointError(
            f"checkpoint {weights} does not match the SHA-256 in its card (truncated, tampered or from another run)"
        )
    return card


def load_checkpoint(
    model: torch.nn.Module, weights: str | os.PathLike, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """Load weights into `model` strictly; return the card."""
    card = read_card(weights)
    try:
        state = load_file(str(weights), device=str(device))
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"could not read checkpoint {weights}: {err}") from None
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise CheckpointError(
            f"checkpoint {weights} does not fit the model: missing {missing[:5]}, unexpected {extra[:5]}"
        )
    for k, v in state.items():
        if v.shape != own[k].shape:
            raise CheckpointError(
                f"checkpoint {weights}: tensor {k} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}"
            )
    model.load_state_dict(state, strict=True)
    return card
