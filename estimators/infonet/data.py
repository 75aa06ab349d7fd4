"""Training data for InfoNet: a stream of random 2-D Gaussian mixtures, generated in torch.

Each dataset draws its own mixture:
- K ~ U{k_min..k_max} components (default 1..20);
- weights ~ Dirichlet(1) over the K active components;
- means ~ U(-mean_range, mean_range)^2 (default 5);
- covariance diag(s) R diag(s) with log s ~ U(log scale_min, log scale_max) per axis and
  correlation r ~ U(-max_corr, max_corr): always positive definite;
- optionally (`p_shuffle`) thinned towards independence: (1 - f) p(x, y) + f p(x) p(y), which is
  again a Gaussian mixture. Without it, near-independent data are rare in the stream and the
  network learns to see structure in noise.

Everything is batched over datasets (components padded to k_max with weight 0), so a batch
of B datasets of n rows costs a handful of tensor ops. Rows are then rank-mapped per margin
onto [-1, 1] (`rank_to_grid`), which is what the network sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class MixtureSpec:
    k_min: int = 1
    k_max: int = 20
    mean_range: float = 5.0
    scale_min: float = 0.1
    scale_max: float = 3.0
    max_corr: float = 0.99
    # with probability p_shuffle a dataset is thinned towards independence: a fraction
    # f = min(1, U(0, 1.3)) of its rows get y from an independent draw of the same mixture,
    # i.e. the law (1 - f) p(x, y) + f p(x) p(y), still a Gaussian mixture (f = 1: independence)
    p_shuffle: float = 0.3

    @classmethod
    def from_params(cls, params: dict) -> MixtureSpec:
        keys = cls.__dataclass_fields__
        return cls(**{k: params[k] for k in keys if k in params})


def sample_mixture_params(
    b: int, spec: MixtureSpec, gen: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """Parameters of b random mixtures: weights (b, K), means (b, K, 2), chol (b, K, 2, 2)."""
    kmax = spec.k_max
    opts = dict(generator=gen, device=device)
    k = torch.randint(spec.k_min, kmax + 1, (b,), **opts)
    active = torch.arange(kmax, device=device)[None] < k[:, None]
    # Dirichlet(1) over the active components = normalised Exp(1) draws
    w = -torch.log(torch.rand(b, kmax, **opts).clamp_min(1e-12)) * active
    w = w / w.sum(1, keepdim=True)
    means = (torch.rand(b, kmax, 2, **opts) * 2 - 1) * spec.mean_range
    lo, hi = np.log(spec.scale_min), np.log(spec.scale_max)
    s = torch.exp(lo + (hi - lo) * torch.rand(b, kmax, 2, **opts))
    r = (torch.rand(b, kmax, **opts) * 2 - 1) * spec.max_corr
    chol = torch.zeros(b, kmax, 2, 2, device=device)
    chol[..., 0, 0] = s[..., 0]
    chol[..., 1, 0] = s[..., 1] * r
    chol[..., 1, 1] = s[..., 1] * torch.sqrt(1 - r * r)
    return {"weights": w, "means": means, "chol": chol}


def sample_from_mixture(params: dict[str, torch.Tensor], n: int, gen: torch.Generator | None = None) -> torch.Tensor:
    """n rows from each of the b mixtures: (b, n, 2)."""
    w, means, chol = params["weights"], params["means"], params["chol"]
    b = w.shape[0]
    comp = torch.multinomial(w, n, replacement=True, generator=gen)  # (b, n)
    z = torch.randn(b, n, 2, generator=gen, device=w.device).to(w.dtype)
    idx = torch.arange(b, device=w.device)[:, None]
    mu = means[idx, comp]  # (b, n, 2)
    L = chol[idx, comp]  # (b, n, 2, 2)
    return mu + (L @ z[..., None])[..., 0]


def rank_to_grid(a: torch.Tensor) -> torch.Tensor:
    """Per-margin ranks over dim -2 mapped onto [-1, 1]: 2 rank/(n+1) - 1 (ties by position)."""
    n = a.shape[-2]
    ranks = a.argsort(dim=-2).argsort(dim=-2).to(torch.float32) + 1.0
    return 2.0 * ranks / (n + 1.0) - 1.0


def training_batch(
    b: int,
    n: int,
    spec: MixtureSpec,
    gen: torch.Generator | None = None,
    n_eval: int | None = None,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One training batch: (encode set (b, n, 2), evaluation set (b, n_eval, 2)), both on the grid.

    The two sets come from the same mixture and are rank-mapped together (so they share one
    coordinate system), then split: the network builds its table from the first and the DV
    bound is scored on the second, which rewards the population critic, not memorisation.
    """
    n_eval = n if n_eval is None else n_eval
    params = sample_mixture_params(b, spec, gen, device)
    xy = sample_from_mixture(params, n + n_eval, gen)
    if spec.p_shuffle > 0:
        y_ind = sample_from_mixture(params, n + n_eval, gen)[..., 1]
        opts = dict(generator=gen, device=xy.device)
        f = (torch.rand(b, 1, **opts) * 1.3).clamp(max=1.0) * (torch.rand(b, 1, **opts) < spec.p_shuffle)
        swap = torch.rand(b, n + n_eval, **opts) < f
        xy = torch.stack([xy[..., 0], torch.where(swap, y_ind, xy[..., 1])], -1)
    xy = rank_to_grid(xy)
    return xy[:, :n], xy[:, n:]


def mixture_log_densities(
    params: dict[str, torch.Tensor], xy: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log p(x, y), log p(x), log p(y) of (b, m, 2) points under b mixtures (float64 inside)."""
    w = params["weights"].double()
    mu = params["means"].double()
    L = params["chol"].double()
    xy = xy.double()
    cov = L @ L.transpose(-1, -2)  # (b, K, 2, 2)
    logw = torch.log(w.clamp_min(1e-300)) + torch.where(w > 0, 0.0, -torch.inf)
    d = xy[:, :, None, :] - mu[:, None]  # (b, m, K, 2)
    # joint: solve with the lower Cholesky factor
    z = torch.linalg.solve_triangular(L[:, None].expand(-1, d.shape[1], -1, -1, -1), d[..., None], upper=False)[..., 0]
    logdet = torch.log(L[..., 0, 0] * L[..., 1, 1])  # (b, K)
    lj = -0.5 * (z**2).sum(-1) - logdet[:, None] - np.log(2 * np.pi)
    log_joint = torch.logsumexp(logw[:, None] + lj, -1)
    out = [log_joint]
    for a in (0, 1):
        var = cov[..., a, a]  # (b, K)
        lm = -0.5 * d[..., a] ** 2 / var[:, None] - 0.5 * torch.log(2 * np.pi * var[:, None])
        out.append(torch.logsumexp(logw[:, None] + lm, -1))
    return out[0], out[1], out[2]


def mixture_mi_mc(
    params: dict[str, torch.Tensor], m: int = 100_000, gen: torch.Generator | None = None, chunk: int = 20_000
) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo MI (nats) of each of the b mixtures from m samples: (estimate, standard error)."""
    vals = []
    for s in range(0, m, chunk):
        xy = sample_from_mixture(params, min(chunk, m - s), gen)
        lj, lx, ly = mixture_log_densities(params, xy)
        vals.append(lj - lx - ly)
    v = torch.cat(vals, 1)
    return v.mean(1).numpy(), (v.std(1) / np.sqrt(v.shape[1])).numpy()
