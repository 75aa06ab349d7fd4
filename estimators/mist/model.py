"""The MIST network: a set transformer over the rows of a dataset.

Input per dataset: row tokens (n, F) and a context vector (C,) from
`estimators.mist.features`, plus the side-input MI estimate g. The context is
added to every row embedding (so attention sees n, dims and the CCA spectrum),
two ISAB blocks (attention through m inducing points: O(n m) rather than
O(n^2)) mix the rows, PMA pools them with a learned seed, and an MLP head reads
[pooled ‖ context (‖ tau)] and predicts a correction to g (or MI itself when
the side input is off). No positional information enters, so the output is
invariant to the order of the rows.

MIST_QR is the same network with tau concatenated to the head input; it is
trained with the pinball loss and evaluated on a tau grid, sorted at inference
so quantiles never cross.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from estimators.attention import Attention

# The quantile levels MIST_QR reports by default (and records in its card): 5% ... 95%.
TAU_GRID = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclasses.dataclass(frozen=True)
class Architecture:
    token_dim: int
    context_dim: int
    width: int = 64
    heads: int = 4
    inducing: int = 16
    n_isab: int = 2
    ff_mult: int = 2
    head_hidden: int = 128
    quantile: bool = False
    residual: bool = True  # predict g + correction (side input on)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Architecture:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"unknown architecture keys {sorted(unknown)}")
        return cls(**d)


class ISAB(nn.Module):
    def __init__(self, width: int, heads: int, inducing: int, ff_mult: int) -> None:
        super().__init__()
        self.inducing = nn.Parameter(torch.randn(1, inducing, width) * width**-0.5)
        self.mab1 = Attention(width, heads, ff_mult)
        self.mab2 = Attention(width, heads, ff_mult)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mab1(self.inducing.expand(x.shape[0], -1, -1), x)
        return self.mab2(x, h)


class PMA(nn.Module):
    def __init__(self, width: int, heads: int, ff_mult: int) -> None:
        super().__init__()
        self.seed = nn.Parameter(torch.randn(1, 1, width) * width**-0.5)
        self.mab = Attention(width, heads, ff_mult)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mab(self.seed.expand(x.shape[0], -1, -1), x)[:, 0]


class MISTNet(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        w = arch.width
        self.embed_tok = nn.Linear(arch.token_dim, w)
        self.embed_ctx = nn.Linear(arch.context_dim, w)
        self.embed_out = nn.Sequential(nn.GELU(), nn.Linear(w, w))
        self.blocks = nn.ModuleList([ISAB(w, arch.heads, arch.inducing, arch.ff_mult) for _ in range(arch.n_isab)])
        self.pool = PMA(w, arch.heads, arch.ff_mult)
        self.ln_pool = nn.LayerNorm(w)
        head_in = w + arch.context_dim + (1 if arch.quantile else 0)
        hh = arch.head_hidden
        self.head = nn.Sequential(nn.Linear(head_in, hh), nn.GELU(), nn.Linear(hh, hh), nn.GELU(), nn.Linear(hh, 1))

    def embed(self, tokens: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """Set embedding (B, width + context_dim) of datasets (B, n, F) with context (B, C)."""
        h = self.embed_out(self.embed_tok(tokens) + self.embed_ctx(ctx)[:, None, :])
        for blk in self.blocks:
            h = blk(h)
        return torch.cat([self.ln_pool(self.pool(h)), ctx], dim=-1)

    def read(self, emb: torch.Tensor, g: torch.Tensor, tau: torch.Tensor | None = None) -> torch.Tensor:
        """Prediction from a set embedding. With tau (B, T): returns (B, T) quantiles; else (B,)."""
        base = g if self.arch.residual else torch.zeros_like(g)
        if self.arch.quantile:
            if tau is None:
                raise ValueError("MIST_QR needs quantile levels tau")
            t = tau.shape[1]
            inp = torch.cat([emb[:, None, :].expand(-1, t, -1), tau[..., None]], dim=-1)
            return base[:, None] + self.head(inp)[..., 0]
        if tau is not None:
            raise ValueError("a point-estimate MIST takes no tau")
        return base + self.head(emb)[:, 0]

    def forward(self, tokens, ctx, g, tau=None):
        return self.read(self.embed(tokens, ctx), g, tau)
