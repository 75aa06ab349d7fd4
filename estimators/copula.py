"""Per-column rank transform to normal scores (the empirical Gaussian copula).

MI is invariant to strictly increasing maps of each coordinate, so this removes
marginal shape while keeping MI. Ties get their average rank.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.special import ndtri
from scipy.stats import rankdata


def normal_scores(a: np.ndarray) -> np.ndarray:
    """Columns of `a` (n, d) mapped to Phi^{-1}(rank / (n + 1))."""
    n = a.shape[0]
    r = rankdata(a, axis=0, method="average")
    return ndtri(r / (n + 1.0))


def uniform_scores(a: np.ndarray) -> np.ndarray:
    """Columns of `a` mapped to rank / (n + 1), in (0, 1)."""
    return rankdata(a, axis=0, method="average") / (a.shape[0] + 1.0)


def normal_scores_torch(a: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Batched normal scores over dim -2 of `a` (..., n, d), in torch.

    With `mask` (..., n) marking valid rows, padded rows are ranked last and set to 0.
    Ties are broken by position (fine for continuous data, used in training).
    """
    if mask is None:
        n = a.shape[-2]
        ranks = a.argsort(dim=-2).argsort(dim=-2).to(a.dtype) + 1.0
        u = ranks / (n + 1.0)
    else:
        big = torch.finfo(a.dtype).max
        filled = torch.where(mask[..., None], a, torch.full_like(a, big))
        ranks = filled.argsort(dim=-2).argsort(dim=-2).to(a.dtype) + 1.0
        counts = mask.sum(-1, keepdim=True).to(a.dtype)[..., None]
        u = (ranks / (counts + 1.0)).clamp(max=1 - 1e-6)
    z = torch.special.ndtri(u)
    if mask is not None:
        z = z * mask[..., None]
    return z
