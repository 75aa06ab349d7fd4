"""The attention block shared by the set transformers (MIST's ISAB/PMA, InfoNet's encoder/decoder)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head attention block, pre-norm: q + Attn(q, kv), then + FFN.

    `kv=None` is self-attention on the normalised queries; `mask` is an additive
    bias or boolean mask broadcast to (B, heads, Lq, Lk).
    """

    def __init__(self, width: int, heads: int, ff_mult: int = 2) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.ln_q = nn.LayerNorm(width)
        self.ln_kv = nn.LayerNorm(width)
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.o = nn.Linear(width, width)
        self.ln_ff = nn.LayerNorm(width)
        self.ff = nn.Sequential(nn.Linear(width, ff_mult * width), nn.GELU(), nn.Linear(ff_mult * width, width))

    def forward(
        self, q: torch.Tensor, kv: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        b, nq, w = q.shape
        h = self.heads
        qn = self.ln_q(q)
        kvn = qn if kv is None else self.ln_kv(kv)
        qq = self.q(qn).view(b, nq, h, w // h).transpose(1, 2)
        k, v = self.kv(kvn).view(b, kvn.shape[1], 2, h, w // h).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(qq, k, v, attn_mask=mask)
        out = q + self.o(att.transpose(1, 2).reshape(b, nq, w))
        return out + self.ff(self.ln_ff(out))
