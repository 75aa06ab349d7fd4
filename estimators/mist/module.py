"""MIST as a differentiable torch module: MI as a training loss.

    >>> mi = estimators.get("mist").module()      # a frozen torch.nn.Module
    >>> loss = -mi(x @ w, y)                      # 0-d tensor in nats; gradients reach x, y and w
    >>> mi(xb, yb)                                # batched: (B, n, dx), (B, n, dy) -> (B,)
    >>> med, q = estimators.get("mist_qr").module()(x, y)   # median and quantiles (..., len(taus))

The features are `estimators.mist.torch_features` (soft ranks at `temperature`); the network and
its weights are the estimator's, copied and frozen (`requires_grad` off: a loss, not a model to
train). Everything runs in torch on the inputs' device: the features in float64, the network in
its own dtype (float32, or float64 after `.double()`, which `torch.autograd.gradcheck` needs); the
result comes back in the inputs' dtype. Categorical columns (`discrete`, default "auto" as in
`estimate()`) are recoded when the weights use `discrete_recode`; they carry no gradient.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from estimators.discrete import categorical_columns as explicit_columns
from estimators.mist import torch_features
from estimators.mist.features import FeatureConfig, swap_view
from estimators.mist.model import MISTNet

# Soft-rank temperature, in units of each column's robust scale; chosen on validation draws of the
# training families (docs/differentiable.md): the largest whose values stay close to `estimate()`.
DEFAULT_TEMPERATURE = 0.02


class MISTModule(nn.Module):
    """forward(x, y) -> MI in nats (MIST), or (median, quantiles) for MIST_QR. See the module doc."""

    def __init__(
        self,
        net: MISTNet,
        features: FeatureConfig,
        *,
        temperature: float = DEFAULT_TEMPERATURE,
        swap_average: bool = True,
        clip: bool = False,
        discrete: Any = "auto",
        min_n: int = 4,
        taus: tuple[float, ...] | None = None,
        spread_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0 (0: hard ranks, no gradient through them), got {temperature}")
        if (taus is None) == net.arch.quantile:
            raise ValueError("quantile levels go with a quantile network, and only with one")
        self.net = copy.deepcopy(net).eval().requires_grad_(False)
        self.features = features
        self.temperature = float(temperature)
        self.swap_average = bool(swap_average)
        self.clip = bool(clip)
        self.discrete = discrete
        self.min_n = int(min_n)
        self.taus = None if taus is None else tuple(float(t) for t in taus)
        self.spread_scale = float(spread_scale)

    def train(self, mode: bool = True) -> MISTModule:  # the network stays in eval mode: a frozen estimator
        super().train(mode)
        self.net.eval()
        return self

    def _check(self, x: torch.Tensor, y: torch.Tensor) -> None:
        for name, a in (("x", x), ("y", y)):
            if not isinstance(a, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(a).__name__}")
            if a.dtype not in (torch.float32, torch.float64):
                raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
            if a.dim() not in (2, 3):
                raise ValueError(f"{name} must have shape (n, d) or (B, n, d), got {tuple(a.shape)}")
            if not torch.isfinite(a.detach()).all():
                raise ValueError(f"{name} has non-finite values (NaN or inf)")
        if x.dim() != y.dim() or x.shape[:-1] != y.shape[:-1]:
            raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} must agree in batch and rows")
        if x.device != y.device:
            raise ValueError(f"x is on {x.device} and y on {y.device}")
        n = x.shape[-2]
        if n < self.min_n:
            raise ValueError(f"MIST needs at least {self.min_n} rows (the weights' training range), got {n}")

    def _columns(self, x: torch.Tensor, y: torch.Tensor, kx: torch.Tensor, ky: torch.Tensor):
        """Categorical columns of the arrays without their constant columns (kept: kx, ky)."""
        if not self.features.discrete_recode:
            return [], []
        if self.discrete is None or (isinstance(self.discrete, str) and self.discrete == "auto"):
            return torch_features.categorical_columns(x[:, kx]), torch_features.categorical_columns(y[:, ky])
        cols = explicit_columns(x.detach().cpu().numpy(), y.detach().cpu().numpy(), self.discrete)
        return tuple([int(keep[:j].sum()) for j in c if keep[j]] for c, keep in zip(cols, (kx.tolist(), ky.tolist())))

    def _features(self, x: torch.Tensor, y: torch.Tensor):
        """One dataset's features, None when x or y is constant (MI = 0 exactly, as `estimate()` says).
        Constant columns are dropped first, as `estimate()` does: they carry no information."""
        kx, ky = ((a.detach() != a.detach()[:1]).any(0) for a in (x, y))
        if not kx.any() or not ky.any():
            return None
        cols = self._columns(x, y, kx, ky)
        x, y = (a if keep.all() else a[:, keep] for a, keep in ((x, kx), (y, ky)))
        return torch_features.dataset_features(x.double(), y.double(), self.features, self.temperature, cols)

    def _network(self, feats: list) -> torch.Tensor:
        """Raw predictions (B,) or (B, T) for the datasets' features, averaged over the (x, y) swap."""
        weight = next(self.net.parameters())
        if weight.device != feats[0][0].device:  # follow the inputs' device (the network is small)
            self.net.to(feats[0][0].device)
        dtype = weight.dtype
        tok, ctx, g = (torch.stack([f[i] for f in feats]).to(dtype) for i in range(3))
        if self.swap_average:
            tok_s, ctx_s = swap_view(tok, ctx, self.features)
            tok, ctx, g = torch.cat([tok, tok_s]), torch.cat([ctx, ctx_s]), torch.cat([g, g])
        tau = None
        if self.taus is not None:
            tau = torch.tensor(self.taus, dtype=dtype, device=tok.device).expand(len(g), -1)
        pred = self.net(tok, ctx, g, tau)
        if self.swap_average:
            pred = 0.5 * (pred[: len(feats)] + pred[len(feats) :])
        return pred

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        self._check(x, y)
        batched = x.dim() == 3
        xs, ys = (x, y) if batched else (x[None], y[None])
        feats = [self._features(xi, yi) for xi, yi in zip(xs, ys)]
        live = [i for i, f in enumerate(feats) if f is not None]
        shape = (len(feats),) if self.taus is None else (len(feats), len(self.taus))
        # Constant inputs answer 0, still attached to the graph (with a zero gradient).
        pred = (xs.sum() + ys.sum()).to(x.dtype) * 0.0 + torch.zeros(shape, dtype=x.dtype, device=x.device)
        if live:
            pred = pred.index_put(
                (torch.tensor(live, device=x.device),), self._network([feats[i] for i in live]).to(x.dtype)
            )
        if self.taus is None:
            mi = torch.clamp(pred, min=0.0) if self.clip else pred
            return mi if batched else mi[0]
        q = torch.sort(pred, dim=-1).values
        mid = self.taus.index(0.5)
        q = q[:, mid : mid + 1] + self.spread_scale * (q - q[:, mid : mid + 1])
        if self.clip:
            q = torch.clamp(q, min=0.0)
        return (q[:, mid], q) if batched else (q[0, mid], q[0])

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, swap_average={self.swap_average}, clip={self.clip}, taus={self.taus}"
