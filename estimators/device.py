"""Device choice: `cuda` when present, else `cpu`, unless forced.

The environment variable MIST_DEVICE (or an explicit argument) forces it; the
workflow sets it from the `device` config key.
"""
from __future__ import annotations

import os

import torch


def resolve_device(device: str | None = None) -> torch.device:
    choice = device or os.environ.get("MIST_DEVICE") or "auto"
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(choice)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {choice!r} was requested but CUDA is not available")
    return dev
