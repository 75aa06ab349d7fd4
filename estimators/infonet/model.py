"""InfoNet network: a sample set of (x, y) pairs -> a G x G table of the DV critic.

Shape of the computation (one dataset of n rows, both margins rank-mapped to [-1, 1]):

1. each row (x_i, y_i) is a token: joint Fourier features (products of cos/sin of x and of y,
   `joint_features`) -> MLP -> width D;
2. `n_latents` learned latent vectors cross-attend to the n tokens (Perceiver-style), so the
   cost is linear in n and the result does not depend on the order of the rows;
3. `depth` self-attention blocks mix the latents;
4. a query decoder cross-attends to the latents and yields the table T[i, j] ~ T(grid_x[i], grid_y[j]):
   - `decoder="grid"`: G*G queries, one per grid point (Fourier features of the point), and an
     MLP head gives each its value (cost ~ G^2);
   - `decoder="factorised"` (default): G row queries (x grid) and G column queries (y grid)
     each give a `width`-vector and T = A B^T / sqrt(width) (cost ~ 2G, rank <= width; ~30x
     cheaper at G = 64, which is what makes thousands of CPU training steps affordable);
5. the table is smoothed with a fixed Gaussian kernel and soft-clamped to +-`clamp`.

MI is then read out by the Donsker-Varadhan bound (`dv_readout`), with T evaluated at the
samples by bilinear interpolation of the table. The grid spans the whole square [-1, 1]^2,
axis 0 = x, axis 1 = y, grid point k at -1 + 2k/(G-1).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from estimators.attention import Attention

# Architecture keys stored in the checkpoint card; the constructor takes exactly these.
ARCH_KEYS = ("grid", "width", "depth", "n_latents", "heads", "n_freq", "smooth_sigma", "clamp", "decoder")
DEFAULT_ARCH: dict[str, Any] = dict(
    grid=64, width=64, depth=2, n_latents=64, heads=4, n_freq=8, smooth_sigma=1.0, clamp=10.0, decoder="factorised"
)
DECODERS = ("grid", "factorised")


def fourier_features(p: torch.Tensor, n_freq: int) -> torch.Tensor:
    """(..., 2) points in [-1, 1]^2 -> (..., 2 + 4 n_freq): raw coordinates, sin and cos."""
    freqs = math.pi * torch.arange(1, n_freq + 1, device=p.device, dtype=p.dtype)
    ang = p[..., :, None] * freqs  # (..., 2, F)
    feats = torch.cat([ang.sin(), ang.cos()], -1).flatten(-2)
    return torch.cat([p, feats], -1)


def joint_features(p: torch.Tensor, n_freq: int) -> torch.Tensor:
    """(..., 2) -> (..., (2 n_freq + 1)^2): all products of [1, cos(pi f x), sin(pi f x)]_f with the same of y.

    Averaged over the rows (which is what near-uniform attention does at the start of
    training), these are the low-frequency Fourier coefficients of the sample's copula:
    dependence is visible to the encoder from the first step.
    """
    freqs = math.pi * torch.arange(1, n_freq + 1, device=p.device, dtype=p.dtype)
    ang = p[..., :, None] * freqs  # (..., 2, F)
    one = torch.ones_like(ang[..., :1])
    basis = torch.cat([one, ang.cos(), ang.sin()], -1)  # (..., 2, 2F+1)
    return (basis[..., 0, :, None] * basis[..., 1, None, :]).flatten(-2)


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(2.5 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def smooth_table(table: torch.Tensor, kernel: torch.Tensor | None) -> torch.Tensor:
    """Separable Gaussian blur of (B, G, G) tables, edges replicated (no pull towards 0)."""
    if kernel is None:
        return table
    r = (kernel.numel() - 1) // 2
    t = table[:, None]
    t = F.conv2d(F.pad(t, (0, 0, r, r), mode="replicate"), kernel.view(1, 1, -1, 1))
    t = F.conv2d(F.pad(t, (r, r, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    return t[:, 0]


class InfoNet(nn.Module):
    def __init__(
        self,
        grid: int = 64,
        width: int = 64,
        depth: int = 2,
        n_latents: int = 64,
        heads: int = 4,
        n_freq: int = 8,
        smooth_sigma: float = 1.0,
        clamp: float = 10.0,
        decoder: str = "factorised",
    ) -> None:
        super().__init__()
        if grid < 2:
            raise ValueError(f"grid must be at least 2, got {grid}")
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        self.arch = dict(
            grid=int(grid),
            width=int(width),
            depth=int(depth),
            n_latents=int(n_latents),
            heads=int(heads),
            n_freq=int(n_freq),
            smooth_sigma=float(smooth_sigma),
            clamp=float(clamp),
            decoder=decoder,
        )
        self.grid, self.n_freq, self.clamp, self.decoder = int(grid), int(n_freq), float(clamp), decoder
        self.width = int(width)
        n_in = 2 + 4 * n_freq
        self.embed = nn.Sequential(nn.Linear((2 * n_freq + 1) ** 2, width), nn.GELU(), nn.Linear(width, width))
        self.latents = nn.Parameter(torch.randn(n_latents, width) * 0.02)
        self.encode = Attention(width, heads)
        self.process = nn.ModuleList(Attention(width, heads) for _ in range(depth))
        self.query_embed = nn.Sequential(nn.Linear(n_in, width), nn.GELU(), nn.Linear(width, width))
        self.decode = Attention(width, heads)
        # factorised decoder: the row/column queries also read the tokens themselves, so a row
        # query at x = g can gather the y's of the rows whose x is near g (the conditional law);
        # a fixed Gaussian locality bias -(x_i - g)^2 / (2 h^2), one bandwidth h per head
        # (0.04 .. 0.5 on the [-1, 1] scale), makes that happen from the first step
        self.decode_tokens = Attention(width, heads) if decoder == "factorised" else None
        bw = torch.logspace(math.log10(0.04), math.log10(0.5), heads)
        self.register_buffer("inv_2h2", 0.5 / bw**2, persistent=False)
        n_out = 1 if decoder == "grid" else width
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, n_out))
        g = torch.linspace(-1.0, 1.0, grid)
        if decoder == "grid":
            gx, gy = torch.meshgrid(g, g, indexing="ij")
            pts = torch.stack([gx, gy], -1).reshape(-1, 2)
        else:  # rows: (g, -2) for x, columns: (-2, g) for y; the constant -2 marks the role
            off = torch.full_like(g, -2.0)
            pts = torch.cat([torch.stack([g, off], -1), torch.stack([off, g], -1)])
        self.register_buffer("grid_points", pts, persistent=False)
        kern = gaussian_kernel1d(smooth_sigma) if smooth_sigma > 0 else None
        self.register_buffer("kernel", kern, persistent=False)

    @classmethod
    def from_arch(cls, arch: dict[str, Any]) -> InfoNet:
        unknown = set(arch) - set(ARCH_KEYS)
        if unknown:
            raise ValueError(f"unknown InfoNet architecture keys: {sorted(unknown)}")
        return cls(**arch)

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        """xy (B, n, 2) in [-1, 1] -> smoothed critic tables (B, G, G)."""
        b = xy.shape[0]
        tokens = self.embed(joint_features(xy, self.n_freq))
        lat = self.latents.expand(b, -1, -1)
        lat = self.encode(lat, tokens)
        for blk in self.process:
            lat = blk(lat)
        q = self.query_embed(fourier_features(self.grid_points, self.n_freq)).expand(b, -1, -1)
        q = self.decode(q, lat)
        if self.decode_tokens is not None:
            g = self.grid_points[: self.grid, 0]
            bias = torch.cat(
                [
                    xy[:, None, :, 0] - g[None, :, None],  # rows: distance in x
                    xy[:, None, :, 1] - g[None, :, None],
                ],
                1,
            )  # columns: distance in y
            bias = -bias.square()[:, None] * self.inv_2h2[None, :, None, None]  # (B, H, 2G, n)
            q = self.decode_tokens(q, tokens, bias)
        h = self.head(q)
        if self.decoder == "grid":
            table = h.view(b, self.grid, self.grid)
        else:
            a, c = h[:, : self.grid], h[:, self.grid :]
            table = a @ c.transpose(1, 2) / math.sqrt(self.width)
        table = smooth_table(table, self.kernel)
        return self.clamp * torch.tanh(table / self.clamp)


def bilinear(table: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bilinear interpolation of tables (B, G, G) at points x, y (B, m) in [-1, 1].

    Axis 0 of the table is x, axis 1 is y; grid point k sits at -1 + 2k/(G-1). Points
    outside [-1, 1] take the edge value.
    """
    # grid_sample reads grid[..., 0] along the last axis (width) and grid[..., 1] along
    # the one before it (height): here width = y, height = x.
    pts = torch.stack([y, x], -1)[:, None]  # (B, 1, m, 2)
    out = F.grid_sample(table[:, None], pts, mode="bilinear", padding_mode="border", align_corners=True)
    return out[:, 0, 0]


def dv_readout(table: torch.Tensor, x: torch.Tensor, y: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """Donsker-Varadhan MI estimate from critic tables.

    table (B, G, G); x, y (B, n) in [-1, 1]; perms (P, n) or (B, P, n) index permutations
    of the rows. Returns (B,):
        mean_i T(x_i, y_i) - log( mean_{p, i} exp T(x_i, y_{perm_p(i)}) ),
    the marginal expectation pooled over all P permutations (P n product-of-marginals pairs).
    """
    b, n = x.shape
    joint = bilinear(table, x, y).mean(-1)
    if perms.dim() == 2:
        perms = perms.expand(b, -1, -1)
    p = perms.shape[1]
    y_shuf = torch.gather(y, 1, perms.reshape(b, p * n))
    x_rep = x.repeat(1, p)
    marg = bilinear(table, x_rep, y_shuf)
    return joint - (torch.logsumexp(marg, -1) - math.log(p * n))


def _perms(n: int, count: int, seed: int, salt: int) -> torch.Tensor:
    rng = np.random.default_rng([seed, n, salt])
    return torch.from_numpy(np.stack([rng.permutation(n) for _ in range(count)]))


def estimate_dv(
    model: InfoNet, xy: torch.Tensor, n_permutations: int = 8, n_splits: int = 2, seed: int = 0
) -> torch.Tensor:
    """MI estimates (B,) for B rank-mapped datasets xy (B, n, 2) of one n.

    With `n_splits` = 0 the table is built from all n rows and read out on the same rows.
    Otherwise it is cross-fitted, as in training: for each of `n_splits` fixed random halvings
    of the rows (A, B), the table from A is scored on B and the table from B on A, and the
    2 * n_splits values are averaged. Reading the table on the rows it was built from is
    optimistic (about +0.05 nats at n = 500 for independent data); cross-fitting removes that.
    The halvings and the marginal permutations depend only on (seed, n), so for rows in a
    canonical order the result does not depend on the input order.
    """
    b, n, _ = xy.shape
    dev = xy.device
    if n_splits == 0:
        perms = _perms(n, n_permutations, seed, 7).to(dev)
        return dv_readout(model(xy), xy[..., 0], xy[..., 1], perms)
    if n < 4:
        raise ValueError(f"cross-fitting needs n >= 4, got {n}")
    total = torch.zeros(b, dtype=xy.dtype, device=dev)
    h = n // 2
    for s in range(n_splits):
        order = torch.from_numpy(np.random.default_rng([seed, n, 11, s]).permutation(n)).to(dev)
        halves = (order[:h], order[h:])
        for enc_idx, ev_idx in (halves, halves[::-1]):
            table = model(xy[:, enc_idx])
            ev = xy[:, ev_idx]
            perms = _perms(ev.shape[1], n_permutations, seed, 7).to(dev)
            total += dv_readout(table, ev[..., 0], ev[..., 1], perms)
    return total / (2 * n_splits)
