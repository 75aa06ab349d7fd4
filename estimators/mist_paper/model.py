"""The paper-style MIST network: two-dimensional attention, over a row's features and over rows.

Per dataset, input values (m, L) and context (n, dx, dy) from `estimators.mist_paper.features`:
1. every entry v becomes a feature token MLP(v) + a learned block embedding (x or y). There is
   no per-column position, so permuting x's columns (or y's) permutes the tokens and nothing else;
2. one masked self-attention layer over the row's feature tokens (padding masked out), then
   pooling by attention with two learned seeds, one reading the x tokens and one the y tokens:
   any dx and dy fit, dx != dy too, and the row vector is invariant to column order within a block;
3. ISAB blocks over the rows (reused from `estimators.mist.model`), PMA pooling with a seed: the
   output does not depend on the order of the rows;
4. head MLP on [pooled ‖ log n, log dx, log dy (‖ tau)] -> MI (MIST_QR: the tau-quantile).
   The sizes go to the head because pooling averages them away and the rows are subsampled.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from estimators.attention import Attention
from estimators.mist.model import ISAB, PMA

DESIGN = "paper"
GROUP = 8  # datasets per group of the feature stage (grouped by dx + dy, see `PaperNet.rows`)


@dataclasses.dataclass(frozen=True)
class PaperArchitecture:
    feat_width: int = 16  # feature-token width (the costly stage: m * (dx + dy) tokens per dataset)
    feat_heads: int = 2
    width: int = 64  # row-token width, as in the set stage of our MIST
    heads: int = 4
    inducing: int = 16
    n_isab: int = 2
    ff_mult: int = 2
    head_hidden: int = 128
    quantile: bool = False
    design: str = DESIGN  # on the card: a MIST card has none, so neither loader takes the other's weights

    def __post_init__(self) -> None:
        if self.design != DESIGN:
            raise ValueError(f"not a paper-style MIST architecture (design {self.design!r})")
        for name in ("feat_width", "feat_heads", "width", "heads", "inducing", "ff_mult", "head_hidden"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PaperArchitecture:
        """Strict: every key known, and the design tag present (a card without it is not ours)."""
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown paper architecture keys {sorted(unknown)}")
        if d.get("design") != DESIGN:
            raise ValueError(f"architecture design is {d.get('design')!r}, not {DESIGN!r}")
        return cls(**d)


class PaperNet(nn.Module):
    def __init__(self, arch: PaperArchitecture) -> None:
        super().__init__()
        self.arch = arch
        fw, w = arch.feat_width, arch.width
        self.value = nn.Sequential(nn.Linear(1, fw), nn.GELU(), nn.Linear(fw, fw))
        self.block = nn.Embedding(2, fw)  # 0: an x entry, 1: a y entry
        self.feat_att = Attention(fw, arch.feat_heads, arch.ff_mult)
        self.feat_seeds = nn.Parameter(torch.randn(1, 2, fw) * fw**-0.5)  # pooling queries: x block, y block
        self.feat_pool = Attention(fw, arch.feat_heads, arch.ff_mult)
        self.row = nn.Sequential(nn.LayerNorm(2 * fw), nn.Linear(2 * fw, w))
        self.blocks = nn.ModuleList([ISAB(w, arch.heads, arch.inducing, arch.ff_mult) for _ in range(arch.n_isab)])
        self.pool = PMA(w, arch.heads, arch.ff_mult)
        self.ln_pool = nn.LayerNorm(w)
        hh = arch.head_hidden
        head_in = w + 3 + (1 if arch.quantile else 0)
        self.head = nn.Sequential(nn.Linear(head_in, hh), nn.GELU(), nn.Linear(hh, hh), nn.GELU(), nn.Linear(hh, 1))

    def rows(self, values: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """Row vectors (B, m, width) of values (B, m, L) laid out [x | y | padding], ctx (B, 3) = (n, dx, dy).

        Datasets go through the feature stage in groups of similar dx + dy, each padded to its own
        largest: padding is masked, so the grouping changes only the cost (2-3x less in a training
        batch, whose dims vary from 2 to 64), not the result."""
        dims = ctx[:, 1:].long()
        if not bool((dims >= 1).all() and (dims.sum(1) <= values.shape[2]).all()):
            raise ValueError(f"context dims {ctx[:, 1:].tolist()} do not fit values with {values.shape[2]} columns")
        total = dims.sum(1)
        order = torch.argsort(total, stable=True)
        out = values.new_empty(values.shape[0], values.shape[1], self.arch.width)
        for idx in order.split(GROUP):
            width = int(total[idx].max())
            out[idx] = self._rows(values[idx, :, :width], dims[idx])
        return out

    def _rows(self, values: torch.Tensor, dims: torch.Tensor) -> torch.Tensor:
        b, m, L = values.shape
        pos = torch.arange(L, device=values.device)
        dx, dy = dims[:, :1], dims[:, 1:]
        is_y = pos >= dx  # (B, L)
        valid = pos < dx + dy
        tok = self.value(values.reshape(b, m, L, 1)) + self.block(is_y.long())[:, None]
        tok = tok.reshape(b * m, L, -1)
        # Masks per dataset, the same for its m rows: (B*m, 1, queries, L), True = may attend.
        keys = valid[:, None, :].expand(b, m, L).reshape(b * m, 1, 1, L)
        tok = self.feat_att(tok, mask=keys)
        blocks = torch.stack([valid & ~is_y, valid & is_y], dim=1)  # (B, 2, L)
        pool_mask = blocks[:, None].expand(b, m, 2, L).reshape(b * m, 1, 2, L)
        pooled = self.feat_pool(self.feat_seeds.expand(b * m, -1, -1), tok, mask=pool_mask)  # (B*m, 2, fw)
        return self.row(pooled.reshape(b, m, -1))

    def embed(self, values: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """Set embedding (B, width + 3): pooled rows and the sizes (log n, log dx, log dy)."""
        h = self.rows(values, ctx)
        for blk in self.blocks:
            h = blk(h)
        sizes = torch.log(ctx) / torch.tensor([6.0, 3.5, 3.5], device=ctx.device)
        return torch.cat([self.ln_pool(self.pool(h)), sizes], dim=-1)

    def read(self, emb: torch.Tensor, tau: torch.Tensor | None = None) -> torch.Tensor:
        """With tau (B, T): (B, T) quantiles; else (B,) MI."""
        if self.arch.quantile:
            if tau is None:
                raise ValueError("the quantile model needs quantile levels tau")
            t = tau.shape[1]
            inp = torch.cat([emb[:, None, :].expand(-1, t, -1), tau[..., None]], dim=-1)
            return self.head(inp)[..., 0]
        if tau is not None:
            raise ValueError("a point-estimate model takes no tau")
        return self.head(emb)[:, 0]

    def forward(self, values, ctx, g=None, tau=None):
        """The training loop's call, model(tokens, context, side input, tau); this design has no side input."""
        del g
        return self.read(self.embed(values, ctx), tau)
