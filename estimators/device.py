"""Device choice, always passed explicitly: `auto` (CUDA when present, else the CPU),
`cpu`, `cuda` or `cuda:N`.

No environment variable is read: every torch estimator takes `device=` (default
"auto") and so do the trainers; the workflow passes its `device` config key to both.
"""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The torch device for `device`; None means "auto". A CUDA device without CUDA is an error."""
    choice = "auto" if device is None else str(device)
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(choice)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {choice!r} was requested but CUDA is not available")
    return dev
