"""MIST's features in torch, differentiable in the data: the loss path of `estimators.mist.module`.

Step for step the pipeline of `estimators.mist.features.dataset_features` (read its docstring for
what each feature is and why), with three changes that make it a smooth function of x and y:

- **Ranks are soft.** The rank of a_i in its column is 1/2 + sum_j sigmoid((a_i - a_j) / (t s)),
  with s the column's robust scale (IQR / 1.349) and t the `temperature`. At t = 0 it is the
  average rank that `estimate()` uses (a tie gets sigmoid(0) = 1/2 from each partner, as average
  ranks do); at t > 0 it is the empirical CDF smoothed by a logistic kernel, whose derivative is
  a kernel density estimate: the gradient of the population copula transform, not zero almost
  everywhere as for hard ranks.
- **Whitening is by Cholesky** instead of the symmetric inverse square root: the canonical
  correlations, variates and Mahalanobis norms are the same, and the gradient needs no
  eigenvector derivatives (which blow up where two eigenvalues meet).
- **Square roots and standard deviations are guarded** where their argument can be 0 (constant
  columns, tied rows), so that the gradient there is 0 instead of NaN.

What stays discrete keeps its exact value and gives no gradient, which is the true derivative of a
piecewise-constant quantity: the neighbour counts of the kNN statistics, the tie shares, the sign of
each canonical pair, which rows the token subsample keeps, and the codes of categorical columns
(recoded by `estimators.discrete`, on the detached values: categories carry no gradient).

Why a second implementation rather than one for both paths: `estimate()` computes its features per
dataset in numpy, in worker processes, at about 1 ms a dataset, and its numbers are the published
ones. `tests/test_mist_module.py` holds the two equal at temperature 0 (hard ranks).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from estimators.discrete import MAX_LEVELS, recode_categorical
from estimators.mist.features import KNN_KS, KNN_STATS, RHO_MAX, FeatureConfig, _raw_count, size_entries

_PAIRWISE_ELEMENTS = 1 << 24  # soft ranks: the largest (n, n, columns) block built at once


def _safe_sqrt(v: torch.Tensor, floor: float = 0.0) -> torch.Tensor:
    """sqrt(v) where v > floor, else 0, with a zero (not NaN) gradient there."""
    ok = v > floor
    return torch.where(ok, torch.sqrt(torch.where(ok, v, torch.ones_like(v))), torch.zeros_like(v))


def _std(a: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Population standard deviation (numpy's ddof = 0) with a finite gradient at zero spread."""
    return _safe_sqrt(((a - a.mean(dim, keepdim=True)) ** 2).mean(dim))


def _robust_scale(a: torch.Tensor) -> torch.Tensor:
    """Per column IQR / 1.349 (the sd of a normal), else the sd, else 1: the soft ranks' length scale,
    robust so that one outlier of a heavy-tailed column does not blur every other rank."""
    q = torch.quantile(a, torch.tensor([0.25, 0.75], dtype=a.dtype, device=a.device), dim=0)
    iqr = (q[1] - q[0]) / 1.349
    scale = torch.where(iqr > 0, iqr, _std(a))
    return torch.where(scale > 1e-12 * a.abs().amax(0), scale, torch.ones_like(scale))


class _SoftRanks(torch.autograd.Function):
    """r_i = 1/2 + sum_j sigmoid((a_i - a_j) / h) per column of a (n, d), bandwidths h (d,).

    The autograd graph of the pairwise form would keep several (n, n, d) tensors; this recomputes the
    sigmoids in the backward pass and uses that their derivative k_ij is symmetric in i and j:
    dL/da = (g * sum_j k_ij - K g) / h and dL/dh = -sum_ij g_i k_ij z_ij / h. The pairs are laid out
    (d, n, n), so that K g is one batched product without a transposed copy."""

    @staticmethod
    def _z(a: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        at = a.T.contiguous()
        return (at[:, :, None] - at[:, None, :]).div_(h[:, None, None])  # (d, n, n): (a_i - a_j) / h

    @staticmethod
    def forward(ctx, a: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, h)
        return 0.5 + torch.sigmoid_(_SoftRanks._z(a, h)).sum(2).T

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: torch.Tensor):
        a, h = ctx.saved_tensors
        z = _SoftRanks._z(a, h)
        k = torch.sigmoid(z)
        k.mul_(1.0 - k)  # sigmoid'(z), even in z
        gt = g.T.contiguous()[:, :, None]  # (d, n, 1)
        grad_a = (gt[..., 0] * k.sum(2) - torch.bmm(k, gt)[..., 0]) / h[:, None]
        grad_h = -(gt[..., 0] * k.mul_(z).sum(2)).sum(1) / h
        return grad_a.T, grad_h


def ranks(a: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per column ranks 1..n of a (n, d): average ranks at temperature 0, else soft ranks (module doc)."""
    n, d = a.shape
    step = max(1, _PAIRWISE_ELEMENTS // (n * n))
    h = _robust_scale(a) * temperature if temperature > 0 else None
    out = []
    for s in range(0, d, step):
        col = a[:, s : s + step]
        if h is None:
            diff = col[:, None, :] - col[None, :, :]  # a_i - a_j
            out.append((diff > 0).sum(1).to(a.dtype) + 0.5 * (diff == 0).sum(1).to(a.dtype) + 0.5)
        else:
            out.append(_SoftRanks.apply(col, h[s : s + step]))
    return torch.cat(out, dim=1)


def normal_scores(a: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.special.ndtri(ranks(a, temperature) / (a.shape[0] + 1.0))


def tie_shares(a: torch.Tensor) -> torch.Tensor:
    """Per column 1 - (distinct values) / n."""
    srt = torch.sort(a.detach(), dim=0).values
    return (srt[1:] == srt[:-1]).sum(0).to(a.dtype) / a.shape[0]


def standardise(a: torch.Tensor) -> torch.Tensor:
    scale = a.detach().abs().amax(0)
    centred = a - a.mean(0)
    sd = _std(a)
    return centred / torch.where(sd <= 1e-12 * scale, torch.ones_like(sd), sd)


def categorical_columns(a: torch.Tensor) -> list[int]:
    """`estimators.discrete`'s default rule: integer-valued columns with 2..min(MAX_LEVELS, n // 2) levels."""
    a = a.detach()
    n = a.shape[0]
    out = []
    for j in torch.nonzero(torch.all(a == torch.round(a), dim=0)).flatten().tolist():
        if 1 < len(torch.unique(a[:, j])) <= min(MAX_LEVELS, n // 2):
            out.append(int(j))
    return out


def _recode(x: torch.Tensor, y: torch.Tensor, x_cols: list[int], y_cols: list[int]):
    """Categorical columns replaced by their label-free codes (computed by `estimators.discrete` on the
    detached values: codes carry no gradient); every other column is left as it is."""
    rx, ry = recode_categorical(x.detach().cpu().numpy(), y.detach().cpu().numpy(), x_cols, y_cols)
    x, y = x.clone(), y.clone()
    for block, recoded, cols in ((x, rx, x_cols), (y, ry, y_cols)):
        if cols:
            block[:, cols] = torch.as_tensor(recoded[:, cols], dtype=block.dtype, device=block.device)
    return x, y


class _ShrunkCCA:
    """`features._ShrunkCCA` with Cholesky whitening (same correlations, variates and norms)."""

    def __init__(self, zx: torch.Tensor, zy: torch.Tensor) -> None:
        self.n, self.dx, self.dy = zx.shape[0], zx.shape[1], zy.shape[1]
        self.sxy = zx.T @ zy / self.n
        self.cxx, self.cyy = zx.T @ zx / self.n, zy.T @ zy / self.n

    def lam(self, c: float) -> float:
        d = self.dx + self.dy
        return c * d / (c * d + self.n)

    def whiteners(self, c: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Lower Cholesky factors of each block's shrunk correlation matrix."""
        lam = self.lam(c)
        return tuple(
            torch.linalg.cholesky((1 - lam) * m + lam * torch.eye(m.shape[0], dtype=m.dtype, device=m.device))
            for m in (self.cxx, self.cyy)
        )

    def cross(self, c: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(L_x^-1 (1 - lam) S_xy L_y^-T, L_x, L_y)."""
        lx, ly = self.whiteners(c)
        left = torch.linalg.solve_triangular(lx, (1 - self.lam(c)) * self.sxy, upper=False)
        return torch.linalg.solve_triangular(ly, left.T, upper=False).T, lx, ly

    def gaussian_mi(self, c: float) -> torch.Tensor:
        s = torch.linalg.svdvals(self.cross(c)[0])
        return canonical_mi(s, min(self.dx, self.dy))[1].sum()


def canonical_mi(s: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    rho = torch.clamp(s[:k], 0.0, RHO_MAX)
    return rho, -0.5 * torch.log1p(-(rho**2))


def _mi_pair(g: torch.Tensor) -> list[torch.Tensor]:
    return [g / 5.0, torch.log1p(g)]


def _pair_signs(w: torch.Tensor) -> torch.Tensor:
    """`features._pair_signs` on the detached values (a sign has no gradient)."""
    w = w.detach()
    s3 = (w**3).sum(0)
    signs = torch.where(s3 < 0, -1.0, 1.0).to(w.dtype)
    tied = torch.abs(s3) <= 1e-9 * (torch.abs(w) ** 3).sum(0)
    if not tied.any():
        return signs
    clear = torch.nonzero(~tied).flatten()
    ref = int(clear[0]) if len(clear) else 0
    if not len(clear):
        signs[ref] = 1.0
    cross = (signs[ref] * w[:, ref]) ** 3 @ w
    for k in torch.nonzero(tied).flatten().tolist():
        if k != ref:
            signs[k] = -1.0 if cross[k] < 0 else 1.0
    return signs


def _row_order(primary: torch.Tensor, ties) -> torch.Tensor:
    """`features._row_order`: stable argsort, ties broken by the columns of `ties()` (np.lexsort)."""
    primary = primary.detach()
    order = torch.argsort(primary, stable=True)
    if not (torch.diff(primary[order]) == 0).any():
        return order
    keys = [col for block in reversed(ties()) for col in block.detach().T.flip(0)]
    idx = torch.arange(len(primary), device=primary.device)
    for key in (*keys, primary):  # least significant first, as np.lexsort reads its keys
        idx = idx[torch.argsort(key[idx], stable=True)]
    return idx


@functools.lru_cache(maxsize=256)
def _even_rows(n: int, m: int) -> np.ndarray:
    """Positions of the m kept rows among n sorted ones: exactly numpy's, half-way cases included."""
    return np.round(np.linspace(0, n - 1, m)).astype(np.int64)


def _keep(order: torch.Tensor, n: int, m: int) -> torch.Tensor:
    return order[torch.as_tensor(_even_rows(n, m), device=order.device)]


def sq_dists(z: torch.Tensor) -> torch.Tensor:
    sq = (z * z).sum(1)
    out = torch.clamp(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, min=0.0)
    return out * (1.0 - torch.eye(len(z), dtype=z.dtype, device=z.device))  # exactly 0 on the diagonal


@torch.no_grad()
def _neighbour_mi(sq_x: torch.Tensor, sq_y: torch.Tensor, ks: tuple[int, ...], float32: bool = False) -> list[float]:
    """`features._neighbour_mi` (but see the rounding below): its counts are integers, so the statistic
    has no gradient."""
    m = sq_x.shape[0]
    ks = tuple(min(k, m - 1) for k in ks)
    joint = torch.maximum(sq_x, sq_y)
    joint.fill_diagonal_(math.inf)
    # The numpy features round the k-th distance to float32 (as in training). The neighbours at exactly
    # that distance (in the block that attains it) are then counted when the rounding goes up, and not
    # when it goes down: a coin flip that moves with every rounding-sized change of the data, a jump
    # rather than a derivative. Here each count's digamma is its expectation over that coin: locally
    # constant, and equal to numpy's on average over the rows.
    kth = torch.sort(joint, dim=1).values[:, : max(ks)]
    if float32:  # numpy's draw of the coin, exactly (no longer locally constant: for tests)
        kth = kth.float().double()
    digamma = torch.special.digamma

    def expected_digamma(sq: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
        below = (sq < rho).sum(1) - 1.0  # without the row itself (rho > 0 here)
        at = (sq == rho).sum(1).to(sq.dtype)
        exact = (sq <= rho).sum(1) - 1.0  # rho = 0 rounds to itself: no coin
        coin = 0.5 * (digamma(below + 1.0) + digamma(below + at + 1.0))
        return digamma(exact + 1.0) if float32 else torch.where(rho[:, 0] > 0, coin, digamma(exact + 1.0))

    zeros = None
    out = []
    for k in ks:
        rho = kth[:, k - 1 : k]
        if (rho > 0).all():
            k_i = torch.full((m,), float(k), dtype=sq_x.dtype, device=sq_x.device)
        else:
            zeros = (joint <= 0).sum(1) if zeros is None else zeros
            k_i = torch.where(rho[:, 0] > 0, float(k), zeros.to(sq_x.dtype))
        psi_m = digamma(torch.tensor(float(m), dtype=sq_x.dtype))
        stat = digamma(k_i) + psi_m - expected_digamma(sq_x, rho) - expected_digamma(sq_y, rho)
        out.append(float(stat.mean()))
    return out


def _knn_stats(zx, zy, u1, v1, float32: bool) -> list[float]:
    if zx.shape[0] < 4:
        return [0.0] * KNN_STATS
    zx, zy, u1, v1 = (a.detach() for a in (zx, zy, u1, v1))
    full = _neighbour_mi(sq_dists(zx), sq_dists(zy), KNN_KS, float32)
    top = _neighbour_mi(torch.square(u1 - u1.T), torch.square(v1 - v1.T), (3,), float32)
    return [v / 3.0 for v in (*full, *top)]


def _pair_stats(sxy: torch.Tensor) -> list[torch.Tensor]:
    r2 = torch.clamp(sxy**2, max=RHO_MAX**2)
    best_x, best_y = r2.amax(1), r2.amax(0)
    mi = 0.25 * (-torch.log1p(-best_x).sum() - torch.log1p(-best_y).sum())
    top = -0.5 * torch.log1p(-best_x.max())
    return [mi / 5.0, torch.log1p(mi), top / 2.0]


def _corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ca, cb = a - a.mean(), b - b.mean()
    return (ca * cb).mean() / (_std(a) * _std(b))


def _radial_stats(mx: torch.Tensor, my: torch.Tensor, dx: int, dy: int) -> list[torch.Tensor]:
    """`features._radial_stats` from the squared Mahalanobis norms of the rows."""
    spreads = [
        torch.clamp(torch.log(torch.clamp(m.var(unbiased=False), min=1e-12) / (2.0 * d)), -3.0, 5.0)
        for m, d in ((mx, dx), (my, dy))
    ]
    degenerate = float(_std(mx.detach())) < 1e-12 or float(_std(my.detach())) < 1e-12
    return spreads + [mx.new_zeros(()) if degenerate else _corr(mx, my)]


def _block_stats(cca: _ShrunkCCA) -> list[torch.Tensor]:
    n = cca.n

    def triple(mean_r2, top):
        return [mean_r2, torch.log1p(n * mean_r2) / 3.0, top]

    def within(c):
        d = c.shape[0]
        w = torch.linalg.eigvalsh(c)
        mean_r2 = torch.clamp(w @ w - d, min=0.0) / (d * (d - 1)) if d > 1 else c.new_zeros(())
        return triple(mean_r2, w.max() / d)

    s = torch.linalg.svdvals(cca.sxy)
    return within(cca.cxx) + within(cca.cyy) + triple(s @ s / cca.sxy.numel(), s[0] / math.sqrt(cca.sxy.numel()))


def _mantel(zx: torch.Tensor, zy: torch.Tensor) -> torch.Tensor:
    n = zx.shape[0]
    if n < 3:
        return zx.new_zeros(())
    sq_x, sq_y = sq_dists(zx), sq_dists(zy)
    dist_x, dist_y = _safe_sqrt(sq_x), _safe_sqrt(sq_y)
    m = n * (n - 1)
    sx, sy = dist_x.sum(), dist_y.sum()
    ssx, ssy = sq_x.sum(), sq_y.sum()
    vx, vy = m * ssx - sx * sx, m * ssy - sy * sy
    if float(vx.detach()) <= 1e-12 * m * float(ssx.detach()) or float(vy.detach()) <= 1e-12 * m * float(ssy.detach()):
        return zx.new_zeros(())
    return (m * (dist_x * dist_y).sum() - sx * sy) / torch.sqrt(vx * vy)


def _top_shares(cca: _ShrunkCCA) -> list[torch.Tensor]:
    out = []
    for c in (cca.cxx, cca.cyy):
        w = torch.linalg.eigvalsh(c)
        out.append(w.max() / torch.clamp(w.sum(), min=1e-12))
    return out


def _raw_stats(x, y, shrinks, max_rows) -> list[torch.Tensor]:
    zx, zy = standardise(x), standardise(y)
    cca = _ShrunkCCA(zx, zy)
    out = _pair_stats(cca.sxy)
    for c in shrinks:
        out += _mi_pair(cca.gaussian_mi(c))
    n = zx.shape[0]
    if max_rows is not None and n > max_rows:
        sx, sy = zx.sum(1), zy.sum(1)
        order = _row_order((zx * zx).sum(1) + (zy * zy).sum(1), lambda: (torch.stack([sx + sy, (sx - sy) ** 2], 1),))
        keep = _keep(order, n, max_rows)
        zx, zy = zx[keep], zy[keep]
    return out + [_mantel(zx, zy)] + _top_shares(cca)


def _align_stats(zx: torch.Tensor, zy: torch.Tensor) -> list[torch.Tensor]:
    n, k = zx.shape[0], min(zx.shape[1], zy.shape[1])
    r = (zx[:, :k] * zy[:, :k]).mean(0)
    r2 = torch.clamp(r * r, max=RHO_MAX**2)
    mi = -0.5 * torch.log1p(-r2)
    cum = torch.cumsum(mi, 0)
    return [
        mi.sum() / 5.0,
        torch.log1p(mi.sum()),
        r2.mean(),
        (n * r2 > 4).to(r2.dtype).mean(),
        (n * r2 > 9).to(r2.dtype).mean(),
        *(cum[min(q, k) - 1] / 5.0 for q in (1, 2, 4, 8, 16)),
        r2[:4].mean() - r2.mean(),
    ]


def _pad(a: torch.Tensor, width: int) -> torch.Tensor:
    return torch.nn.functional.pad(a, (0, width - a.shape[-1]))


def dataset_features(
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: FeatureConfig,
    temperature: float,
    columns: tuple[list[int], list[int]] = ([], []),
    knn_float32: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tokens (m, token_dim), context (context_dim,), g) of one dataset, in x's dtype (float64 advised).

    `columns`: the categorical columns of x and of y (recoded when the weights use `discrete_recode`).
    `knn_float32`: round the kNN distances to float32 as numpy does, instead of taking the expectation
    over that rounding (see `_neighbour_mi`): with temperature 0 this is numpy's features exactly, but
    no longer a locally smooth function of the data. For tests."""
    n, dx = x.shape
    dy = y.shape[1]
    if cfg.discrete_recode and (columns[0] or columns[1]):
        x, y = _recode(x, y, *columns)
    tie_x, tie_y = tie_shares(x), tie_shares(y)
    if cfg.normalisation == "copula":
        zx, zy = standardise(normal_scores(x, temperature)), standardise(normal_scores(y, temperature))
    else:
        zx, zy = standardise(x), standardise(y)
    cca = _ShrunkCCA(zx, zy)
    k = min(dx, dy)
    lam = cca.lam(cfg.shrink)
    m, lx, ly = cca.cross(cfg.shrink)
    u_mat, s, vt = torch.linalg.svd(m, full_matrices=False)
    rho, pair_mi = canonical_mi(s, k)
    g = pair_mi.sum()
    extra = []
    for c in cfg.extra_shrinks:
        extra += _mi_pair(cca.gaussian_mi(c))
    K = cfg.k_pairs
    kk = min(K, k)
    # Whitened rows: (L^-1 z^T)^T. The canonical variates are their projections on the singular vectors.
    wx = torch.linalg.solve_triangular(lx, zx.T, upper=False).T
    wy = torch.linalg.solve_triangular(ly, zy.T, upper=False).T
    u, v = wx @ u_mat[:, :kk], wy @ vt.T[:, :kk]
    u, v = (a / torch.where(sd < 1e-8, torch.ones_like(sd), sd) for a in (u, v) for sd in [_std(a)])
    canon = _pair_signs(u + v)
    u, v = u * canon, v * canon
    rx = ((zx**2).sum(1) - dx) / math.sqrt(2.0 * dx)
    ry = ((zy**2).sum(1) - dy) / math.sqrt(2.0 * dy)
    if cfg.max_rows is not None and n > cfg.max_rows:
        order = _row_order(u[:, 0] + v[:, 0], lambda: (u + v, (u - v) ** 2, torch.stack([rx + ry, (rx - ry) ** 2], 1)))
        keep = _keep(order, n, cfg.max_rows)
        u, v, rx, ry = u[keep], v[keep], rx[keep], ry[keep]
    else:
        keep = slice(None)
    knn = _knn_stats(zx[keep], zy[keep], u[:, :1], v[:, :1], knn_float32) if cfg.knn_stats else []
    tokens = torch.cat([_pad(u, K), _pad(v, K), rx[:, None], ry[:, None]], dim=1)
    tokens = torch.clamp(tokens, -8.0, 8.0)

    side = 1.0 if cfg.side_input else 0.0
    entries: list = [
        *(float(e) for e in size_entries(n, dx, dy, lam)),
        side * g / 5.0,
        side * torch.log1p(g),
        side * pair_mi[kk:].sum() / 5.0,
        *(side * _pad(rho[:kk], K)),
        *(side * _pad(pair_mi[:kk], K) / 2.0),
        *(side * e for e in extra),
    ]
    if cfg.pair_stats:
        entries += _pair_stats(cca.sxy)
    if cfg.radial_stats:  # squared Mahalanobis norms under the shrunk correlation (whitening-invariant)
        entries += _radial_stats((wx**2).sum(1), (wy**2).sum(1), dx, dy)
    if cfg.block_stats:
        entries += _block_stats(cca)
    if cfg.raw_stats:
        shrinks = (cfg.shrink, *cfg.extra_shrinks)
        if cfg.raw_max_n is None or n <= cfg.raw_max_n:
            entries += _raw_stats(x, y, shrinks, cfg.max_rows)
        else:
            entries += [0.0] * _raw_count(len(shrinks))
    if cfg.align_stats:
        entries += _align_stats(zx, zy)
    entries += knn
    if cfg.tie_stats:
        entries += [tie_x.mean(), tie_y.mean(), tie_x.max(), tie_y.max()]
    ctx = torch.stack([torch.as_tensor(e, dtype=x.dtype, device=x.device) for e in entries])
    return tokens, ctx, g * side
