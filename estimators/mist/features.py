"""Per-dataset inputs of MIST: row tokens plus a dataset-level context vector.

Pipeline for one dataset (x: n x dx, y: n x dy):
1. normalisation: `copula` (default) maps every column to normal scores
   Phi^-1(rank / (n + 1)), which removes any strictly increasing marginal map
   (MI is invariant to it); `standard` only standardises the columns;
2. a shrunk CCA on the normalised columns: the joint correlation matrix is
   pulled toward the identity by lambda = c (dx + dy) / (c (dx + dy) + n), so
   the canonical correlations stay below 1 even when n <= d (`shrink` = c;
   the Gaussian-copula MI at further c values can join the context);
3. row tokens: the top-K canonical variate pairs (u_1..u_K, v_1..v_K),
   zero-padded when min(dx, dy) < K, plus two radial features (the
   standardised squared norms of the row's x and y parts, which carry the
   shared-scale dependence of Student-t families), optionally from a
   stratified subsample of at most `max_rows` rows. The token width is fixed,
   so any dx, dy work (dx != dy, d > 32). The tokens are invariant to the
   order of the rows, to permutations and sign flips of the columns within x
   or within y and, through the normal scores, to any strictly increasing map
   of a column (with `standard`: any affine map); swapping x and y swaps u
   and v;
4. context: log n, dims, the shrunk Gaussian-copula MI
   g = -1/2 sum log(1 - rho_i^2) (the side input the head corrects), the
   canonical-correlation spectrum and the classic bias scale dx*dy/(2n);
   with `pair_stats`, also the Gaussian MI of the best-correlated single column
   pairs, which ten rows can show where a CCA over dozens of columns cannot.
   Unlike the CCA, this reads the given coordinates (as the copula transform
   already does): rotating x changes it. With `radial_stats`, also the
   dispersion of the squared (shrunk-)Mahalanobis norms of x and of y and their
   correlation, over all n rows: the shared-scale dependence that separates a
   Student-t copula from a Gaussian one, measured on the whole sample rather
   than on the <= max_rows token rows. With `block_stats`, also the mean squared
   correlation and top eigenvalue within x, within y and across (see
   `_block_stats`): what a handful of rows can still say about dense and
   latent-variable dependence. With `raw_stats`, also statistics of the
   standardised raw values (see `_raw_stats`): with ten rows the normal scores
   are ten fixed values, so a near-deterministic coupling saturates every
   rank-based statistic, while the raw values still show how close it is;
   `raw_max_n` limits them to small samples (zeros above), where ranks are coarse.
   With `align_stats`, also how strongly x_i goes with y_i in the given column
   order (see `_align_stats`): the one part of the context that reads the order
   of the columns, trained with y's columns shuffled in a share of the datasets.
   With `knn_stats`, nearest-neighbour MI estimates on the token rows (see
   `_knn_stats`): the only inputs that see dependence no correlation shows (a V
   shape, clusters). With `tie_stats`, the share of tied values per block.
Before step 1, with `discrete_recode`, categorical columns are recoded by an order
read from the data, never from their labels (`estimators.discrete`).

Everything here is numpy and per dataset: it runs in data-loader workers
during training and once per dataset at inference.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import digamma, ndtri
from scipy.stats import rankdata

from estimators.discrete import Discrete, categorical_columns, recode_categorical

RHO_MAX = 0.9999
RAW_STATS_BASE = 6  # raw-value statistics besides the Gaussian MI at each shrinkage (see `_raw_stats`)
ALIGN_STATS = 11  # entries of `_align_stats`
KNN_KS = (3, 8)  # neighbours of the nearest-neighbour MI estimates
KNN_STATS = len(KNN_KS) + 1  # entries of `_knn_stats`
TIE_STATS = 4  # tie-share entries: mean and largest over x's columns and over y's


def _raw_count(n_shrinks: int) -> int:
    """Context entries of `_raw_stats`: RAW_STATS_BASE, plus an MI pair per shrinkage."""
    return RAW_STATS_BASE + 2 * n_shrinks


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    normalisation: str = "copula"  # copula | standard
    k_pairs: int = 8  # canonical pairs in each row token
    side_input: bool = True  # Gaussian-copula MI in the context (and the head predicts a correction)
    max_rows: int | None = None  # tokens from at most this many rows (context always uses all rows)
    shrink: float = 1.0  # c in lambda = c D / (c D + n), D = dx + dy (1.0: the first design)
    extra_shrinks: tuple = ()  # further c values whose Gaussian-copula MI goes into the context
    pair_stats: bool = False  # context: Gaussian MI of the strongest single column pairs (see below)
    radial_stats: bool = False  # context: spread and correlation of the x and y squared norms (all rows)
    block_stats: bool = False  # context: strength of the correlations within x, within y and across
    raw_stats: bool = False  # context: pair stats, Gaussian MI, distance and rank-1 structure of the raw values
    raw_max_n: int | None = None  # raw_stats only for n <= this (zeros above, where the ranks are fine grained)
    align_stats: bool = False  # context: correlations of x_i with y_i in the given column order (see below)
    align_shuffle: float = 0.0  # training only: this share of datasets has y's columns shuffled first
    discrete_recode: bool = False  # categorical columns recoded by a label-free order first (estimators.discrete)
    knn_stats: bool = False  # context: nearest-neighbour MI estimates on the token rows (see `_knn_stats`)
    tie_stats: bool = False  # context: mean and largest tie share 1 - distinct/n of x's and y's columns

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra_shrinks", tuple(float(c) for c in self.extra_shrinks))
        self._check()

    def _check(self) -> None:
        if self.shrink <= 0 or any(c <= 0 for c in self.extra_shrinks):
            raise ValueError("shrinkage constants must be > 0 (n <= d needs shrinkage to stay finite)")
        if self.normalisation not in ("copula", "standard"):
            raise ValueError(f"normalisation must be 'copula' or 'standard', got {self.normalisation!r}")
        if self.k_pairs < 1:
            raise ValueError(f"k_pairs must be >= 1, got {self.k_pairs}")
        if self.max_rows is not None and self.max_rows < 2:
            raise ValueError(f"max_rows must be >= 2 or None, got {self.max_rows}")
        if self.raw_max_n is not None and (not self.raw_stats or self.raw_max_n < 2):
            raise ValueError(f"raw_max_n needs raw_stats and must be >= 2 or None, got {self.raw_max_n}")
        if not 0.0 <= self.align_shuffle <= 1.0 or (self.align_shuffle and not self.align_stats):
            raise ValueError(f"align_shuffle must lie in [0, 1] and needs align_stats, got {self.align_shuffle}")

    @property
    def token_dim(self) -> int:
        return 2 * self.k_pairs + 2

    @property
    def context_dim(self) -> int:
        return self._tie_at + (TIE_STATS if self.tie_stats else 0)

    @property
    def _knn_at(self) -> int:
        """Context index of the nearest-neighbour statistics (after the alignment ones)."""
        return self._align_at + (ALIGN_STATS if self.align_stats else 0)

    @property
    def _tie_at(self) -> int:
        """Context index of the tie statistics (they come last)."""
        return self._knn_at + (KNN_STATS if self.knn_stats else 0)

    @property
    def _radial_at(self) -> int:
        """Context index of the radial statistics (they come last)."""
        return 13 + 2 * self.k_pairs + 2 * len(self.extra_shrinks) + (3 if self.pair_stats else 0)

    @property
    def _block_at(self) -> int:
        """Context index of the block statistics (after the radial ones)."""
        return self._radial_at + (3 if self.radial_stats else 0)

    @property
    def _raw_at(self) -> int:
        """Context index of the raw-value statistics (after the block ones)."""
        return self._block_at + (9 if self.block_stats else 0)

    @property
    def _align_at(self) -> int:
        """Context index of the alignment statistics (after the raw ones)."""
        return self._raw_at + (_raw_count(1 + len(self.extra_shrinks)) if self.raw_stats else 0)

    @property
    def ctx_swap_pairs(self) -> tuple[tuple[int, int], ...]:
        """Context entries that exchange when x and y swap roles."""
        pairs = ((2, 3), (4, 5))  # log dx <-> log dy, dx/n <-> dy/n
        if self.radial_stats:
            pairs += ((self._radial_at, self._radial_at + 1),)
        if self.block_stats:  # the x-block triple <-> the y-block triple
            pairs += tuple((self._block_at + i, self._block_at + 3 + i) for i in range(3))
        if self.raw_stats:  # the rank-1 shares of x and of y end the raw block (see `_raw_stats`)
            pairs += ((self._align_at - 2, self._align_at - 1),)
        if self.tie_stats:  # [mean x, mean y, max x, max y] (see `dataset_features`)
            pairs += ((self._tie_at, self._tie_at + 1), (self._tie_at + 2, self._tie_at + 3))
        return pairs

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["extra_shrinks"] = list(self.extra_shrinks)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        return cls(**d)


@functools.lru_cache(maxsize=1024)
def _score_table(n: int) -> np.ndarray:
    """Phi^-1(k / (n + 1)) for k = 1..n: the normal score of every rank (cached: read-only)."""
    table = ndtri(np.arange(1.0, n + 1.0) / (n + 1.0))
    table.setflags(write=False)
    return table


def _normal_scores(a: np.ndarray) -> np.ndarray:
    """Per column Phi^-1(rank / (n + 1)); tied values share their average rank."""
    return _scores_and_ties(a)[0]


def _scores_and_ties(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normal scores and, from the same sort, each column's tie share 1 - (distinct values) / n."""
    n = a.shape[0]
    at = np.ascontiguousarray(a.T)  # sorting contiguous rows is much faster than strided columns
    order = np.argsort(at, axis=1)
    srt = np.take_along_axis(at, order, axis=1)
    tied = np.diff(srt, axis=1) == 0
    share = np.count_nonzero(tied, axis=1) / n
    if share.any():  # ties: scipy's average ranks (rare for continuous data)
        return ndtri(rankdata(a, axis=0, method="average") / (n + 1.0)), share
    # No ties: the i-th smallest value gets the i-th score, one scatter per column.
    scores = np.empty(at.shape, dtype=np.float64)
    np.put_along_axis(scores, order, np.broadcast_to(_score_table(n), at.shape), axis=1)
    return scores.T, share


def _standardise(a: np.ndarray) -> np.ndarray:
    scale = np.abs(a).max(0)
    a = a - a.mean(0)
    sd = a.std(0)
    # Constant column (stays all zeros): a spread at the float resolution of its values,
    # relative, so that a column of tiny values that do vary is standardised like any other.
    sd[sd <= 1e-12 * scale] = 1.0
    return a / sd


def _inv_sqrt_shrunk(w: np.ndarray, v: np.ndarray, lam: float) -> np.ndarray:
    """((1 - lam) C + lam I)^(-1/2) from the eigendecomposition C = v diag(w) v^T.

    Shrinking toward I keeps the eigenvectors, so one eigh serves every lam."""
    s = np.maximum((1 - lam) * w + lam, 1e-6)
    return (v / np.sqrt(s)) @ v.T


def dataset_features(
    x: np.ndarray,
    y: np.ndarray,
    cfg: FeatureConfig,
    rng: np.random.Generator | None = None,
    discrete: Discrete = "auto",
) -> tuple[np.ndarray, np.ndarray, float]:
    """Return (tokens (m, token_dim) float32, context (context_dim,) float32, g); m = min(n, max_rows).

    With `rng`, each canonical pair gets a random joint sign flip (training
    augmentation: the SVD's sign is arbitrary). `discrete` names the categorical
    columns (`estimators.discrete.categorical_columns`); it matters with `discrete_recode`.
    """
    n, dx = x.shape
    dy = y.shape[1]
    if cfg.discrete_recode:
        x, y = recode_categorical(x, y, *categorical_columns(x, y, discrete))
    if rng is not None and cfg.align_shuffle and rng.random() < cfg.align_shuffle:
        y = y[:, rng.permutation(dy)]  # no pairing of x_i with y_i to read: the model must not assume one
    if cfg.normalisation == "copula":  # recoding maps values one to one, so the tie shares are the input's
        (zx, tie_x), (zy, tie_y) = _scores_and_ties(x), _scores_and_ties(y)
        zx, zy = _standardise(zx), _standardise(zy)
    else:
        tie_x, tie_y = _scores_and_ties(x)[1], _scores_and_ties(y)[1]
        zx, zy = _standardise(x), _standardise(y)
    # Shrink the joint correlation matrix toward the identity: still a valid
    # correlation matrix, so every canonical correlation stays below 1.
    cca = _ShrunkCCA(zx, zy)
    sxy, eig_x, eig_y = cca.sxy, cca.eig_x, cca.eig_y
    k = min(dx, dy)
    lam, s, white_x, white_y, u_mat, v_mat = cca(cfg.shrink, True)
    proj_x, proj_y = white_x @ u_mat, white_y @ v_mat
    rho, pair_mi = _canonical_mi(s, k)
    g = float(pair_mi.sum())
    extra = []
    for c in cfg.extra_shrinks:
        extra += _mi_pair(cca.gaussian_mi(c))
    K = cfg.k_pairs
    kk = min(K, k)
    u = zx @ proj_x[:, :kk]
    v = zy @ proj_y[:, :kk]
    for a in (u, v):
        sd = a.std(0)
        sd[sd < 1e-8] = 1.0
        a /= sd
    # The SVD's sign of each pair is arbitrary: fix it by the skewness of u + v,
    # which is the same for (x, y) and (y, x) and does not depend on row order.
    canon = _pair_signs(u + v)
    u *= canon
    v *= canon
    if rng is not None:
        sign = rng.choice([-1.0, 1.0], size=kk)
        u *= sign
        v *= sign
    rx = ((zx**2).sum(1) - dx) / np.sqrt(2.0 * dx)
    ry = ((zy**2).sum(1) - dy) / np.sqrt(2.0 * dy)
    if cfg.max_rows is not None and n > cfg.max_rows:
        # A stratified subsample along the first canonical pair: rows at evenly
        # spaced positions of the order of u_1 + v_1. It depends on the rows'
        # values only, so it is invariant to row order (and symmetric under
        # the pair's sign flip and under swapping x and y).
        order = _row_order(u[:, 0] + v[:, 0], lambda: (u + v, (u - v) ** 2, np.c_[rx + ry, (rx - ry) ** 2]))
        keep = order[np.round(np.linspace(0, n - 1, cfg.max_rows)).astype(int)]
        u, v, rx, ry = u[keep], v[keep], rx[keep], ry[keep]
    else:
        keep = slice(None)
    knn = _knn_stats(zx[keep], zy[keep], u[:, :1], v[:, :1]) if cfg.knn_stats else []
    tokens = np.zeros((len(u), cfg.token_dim), dtype=np.float32)
    tokens[:, :kk] = u
    tokens[:, K : K + kk] = v
    tokens[:, 2 * K] = rx
    tokens[:, 2 * K + 1] = ry
    np.clip(tokens, -8.0, 8.0, out=tokens)

    side = 1.0 if cfg.side_input else 0.0
    rho_k = np.zeros(K)
    mi_k = np.zeros(K)
    rho_k[:kk] = rho[:kk]
    mi_k[:kk] = pair_mi[:kk]
    pairs = _pair_stats(sxy) if cfg.pair_stats else []
    radial = _radial_stats(zx @ white_x, zy @ white_y) if cfg.radial_stats else []
    block = _block_stats(eig_x[0], eig_y[0], sxy, n) if cfg.block_stats else []
    raw = []
    if cfg.raw_stats:
        shrinks = (cfg.shrink, *cfg.extra_shrinks)
        raw = (
            _raw_stats(x, y, shrinks, cfg.max_rows)
            if cfg.raw_max_n is None or n <= cfg.raw_max_n
            else [0.0] * _raw_count(len(shrinks))
        )
    ctx = np.concatenate(
        [
            [
                *size_entries(n, dx, dy, lam),
                side * g / 5.0,
                side * np.log1p(g),
                side * pair_mi[kk:].sum() / 5.0,
            ],
            side * rho_k,
            side * mi_k / 2.0,
            side * np.asarray(extra, dtype=np.float64),
            pairs,
            radial,
            block,
            raw,
            _align_stats(zx, zy) if cfg.align_stats else [],
            knn,
            [tie_x.mean(), tie_y.mean(), tie_x.max(), tie_y.max()] if cfg.tie_stats else [],
        ]
    ).astype(np.float32)
    return tokens, ctx, g if cfg.side_input else 0.0


def size_entries(n: int, dx: int, dy: int, lam: float) -> list[float]:
    """The context's first entries: sample size, dimensions, the classic bias scale dx*dy/(2n), the
    rank of the CCA and its shrinkage (shared with `estimators.mist.torch_features`)."""
    return [
        np.log(n) / 6.0,
        3.0 / np.sqrt(n),
        np.log(dx) / 3.5,
        np.log(dy) / 3.5,
        min(dx / n, 5.0),
        min(dy / n, 5.0),
        np.log1p(dx * dy / (2.0 * n)),
        min(dx, dy) / 32.0,
        lam,
        min(dx, dy) / max(dx, dy),
    ]


def _pair_signs(w: np.ndarray) -> np.ndarray:
    """A sign per canonical pair (column of w = u + v): the sign of its skewness.

    A pair whose skewness is zero up to rounding (every pair of a sample that is
    symmetric under (x, y) -> (-x, -y)) would get its sign from the rounding, which
    depends on the row order. Such a pair is signed relative to a reference pair
    instead, by sum_i w_ref^3 w_k, which flips with pair k alone. The reference is the
    first pair with a clear skewness, else the first pair as the SVD signed it: then
    flipping every pair at once maps the sample onto itself, so that sign is free."""
    s3 = (w**3).sum(0)
    signs = np.where(s3 < 0, -1.0, 1.0)
    tied = np.abs(s3) <= 1e-9 * (np.abs(w) ** 3).sum(0)
    if not tied.any():
        return signs
    clear = np.flatnonzero(~tied)
    ref = int(clear[0]) if len(clear) else 0
    if not len(clear):
        signs[ref] = 1.0
    cross = (signs[ref] * w[:, ref]) ** 3 @ w
    for k in np.flatnonzero(tied):
        if k != ref:
            signs[k] = -1.0 if cross[k] < 0 else 1.0
    return signs


def _row_order(primary: np.ndarray, ties: Callable[[], tuple[np.ndarray, ...]]) -> np.ndarray:
    """Row indices sorted by `primary`; equal values are ordered by the columns of the blocks
    `ties()` returns, in turn, so that the order depends on the rows' values and not on their
    input order (a stable sort alone would keep whichever of two tied rows came first)."""
    order = np.argsort(primary, kind="stable")
    if not (np.diff(primary[order]) == 0).any():  # the usual case: no ties, no tie keys built
        return order
    keys = [col for block in reversed(ties()) for col in block.T[::-1]]
    return np.lexsort((*keys, primary))


class _ShrunkCCA:
    """CCA of standardised blocks with the joint correlation matrix shrunk toward the identity
    by lambda = c (dx + dy) / (c (dx + dy) + n): one eigendecomposition per block serves every c."""

    def __init__(self, zx: np.ndarray, zy: np.ndarray) -> None:
        self.n, self.dx, self.dy = zx.shape[0], zx.shape[1], zy.shape[1]
        self.sxy = zx.T @ zy / self.n
        self.eig_x, self.eig_y = np.linalg.eigh(zx.T @ zx / self.n), np.linalg.eigh(zy.T @ zy / self.n)

    def __call__(self, c: float, vectors: bool):
        d = self.dx + self.dy
        lam = c * d / (c * d + self.n)
        wx = _inv_sqrt_shrunk(*self.eig_x, lam)
        wy = _inv_sqrt_shrunk(*self.eig_y, lam)
        m = wx @ ((1 - lam) * self.sxy) @ wy
        if not vectors:
            return lam, np.linalg.svd(m, compute_uv=False)
        u_mat, s, vt = np.linalg.svd(m, full_matrices=False)
        return lam, s, wx, wy, u_mat, vt.T

    def gaussian_mi(self, c: float) -> float:
        """-1/2 sum log(1 - rho_i^2) over the shrunk canonical correlations."""
        return float(_canonical_mi(self(c, False)[1], min(self.dx, self.dy))[1].sum())


def _canonical_mi(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first k canonical correlations, capped at RHO_MAX, and each pair's -1/2 log(1 - rho^2)."""
    rho = np.clip(s[:k], 0.0, RHO_MAX)
    return rho, -0.5 * np.log1p(-(rho**2))


def _mi_pair(g: float) -> list[float]:
    """An MI as two context entries: linear and log scale."""
    return [g / 5.0, np.log1p(g)]


def _raw_stats(x: np.ndarray, y: np.ndarray, shrinks: tuple[float, ...], max_rows: int | None) -> list[float]:
    """Statistics of the standardised raw values (invariant to affine maps of each column):

    - the single-pair Gaussian MI of `_pair_stats` and the shrunk Gaussian MI at each c;
    - the Mantel correlation: corr of the pairwise row distances in x and in y, which stays
      informative when n < d, where every CCA overfits (over at most `max_rows` rows, at
      evenly spaced positions of the order of |x|^2 + |y|^2: independent of the row order);
    - the top eigenvalue's share of each block's correlation matrix (x, then y): low-rank,
      latent-variable structure.

    At small n these see what the normal scores cannot (see the module doc); the model
    weighs them against the rank-based ones, which are robust to the marginals."""
    zx, zy = _standardise(x), _standardise(y)
    cca = _ShrunkCCA(zx, zy)
    out = _pair_stats(cca.sxy)
    for c in shrinks:
        out += _mi_pair(cca.gaussian_mi(c))
    n = zx.shape[0]
    if max_rows is not None and n > max_rows:
        order = _row_order(
            (zx * zx).sum(1) + (zy * zy).sum(1), lambda: (np.c_[zx.sum(1) + zy.sum(1), (zx.sum(1) - zy.sum(1)) ** 2],)
        )
        keep = order[np.round(np.linspace(0, n - 1, max_rows)).astype(int)]
        zx, zy = zx[keep], zy[keep]
    return out + [_mantel(zx, zy)] + _top_shares(cca)


def _top_shares(cca: _ShrunkCCA) -> list[float]:
    # Eigenvalues of a correlation matrix sum to d (0 for an all-constant block).
    return [float(w.max()) / max(float(w.sum()), 1e-12) for w in (cca.eig_x[0], cca.eig_y[0])]


def _mantel(zx: np.ndarray, zy: np.ndarray) -> float:
    """Pearson correlation of the Euclidean row distances in x and in y over all pairs of rows.

    Computed from sums over the full (symmetric, zero-diagonal) distance matrices, which count
    every pair twice and so give the same correlation as the upper triangle, without indexing it."""
    n = zx.shape[0]
    if n < 3:  # one pair of rows: no correlation to speak of
        return 0.0
    sq_x, sq_y = _sq_dists(zx), _sq_dists(zy)
    dist_x, dist_y = np.sqrt(sq_x), np.sqrt(sq_y)
    m = n * (n - 1)
    sx, sy = dist_x.sum(), dist_y.sum()
    ssx, ssy = sq_x.sum(), sq_y.sum()
    vx, vy = m * ssx - sx * sx, m * ssy - sy * sy  # m^2 times the variances
    if vx <= 1e-12 * m * ssx or vy <= 1e-12 * m * ssy:  # (near-)equal distances: no correlation to speak of
        return 0.0
    return float((m * np.einsum("ij,ij->", dist_x, dist_y) - sx * sy) / np.sqrt(vx * vy))


def _sq_dists(z: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between all rows: (n, n)."""
    sq = (z * z).sum(1)
    out = np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)
    np.fill_diagonal(out, 0.0)  # exactly, not up to rounding
    return out


def _pair_stats(sxy: np.ndarray) -> list[float]:
    """Gaussian MI of single column pairs, from the cross-correlations corr(x_i, y_j).

    With few rows and many columns the CCA overfits, but a strongly coupled pair (the
    sparse families) still shows in its own correlation. Per column, the best partner's
    -1/2 log(1 - r^2), summed and averaged over the x and y sides (so the statistic is
    the same for (x, y) and (y, x)), plus the single strongest pair."""
    r2 = np.minimum(sxy**2, RHO_MAX**2)
    best_x, best_y = r2.max(1), r2.max(0)
    mi = 0.25 * (-np.log1p(-best_x).sum() - np.log1p(-best_y).sum())
    top = -0.5 * np.log1p(-best_x.max())
    return [mi / 5.0, np.log1p(mi), top / 2.0]


def _radial_stats(white_rows_x: np.ndarray, white_rows_y: np.ndarray) -> list[float]:
    """[log spread of |x|^2, log spread of |y|^2, corr(|x|^2, |y|^2)] of whitened rows.

    For Gaussian rows |x|^2 is chi^2 with variance 2 dx (spread 0 on this log
    scale) and the correlation is sum_i rho_i^2 / sqrt(dx dy) from the
    canonical correlations; a shared scale (Student-t) raises both."""
    mx, my = (white_rows_x**2).sum(1), (white_rows_y**2).sum(1)
    spreads = [
        float(np.clip(np.log(max(m.var(), 1e-12) / (2.0 * a.shape[1])), -3.0, 5.0))
        for m, a in ((mx, white_rows_x), (my, white_rows_y))
    ]
    degenerate = mx.std() < 1e-12 or my.std() < 1e-12  # e.g. n = 2: no correlation to speak of
    return spreads + [0.0 if degenerate else float(np.corrcoef(mx, my)[0, 1])]


def _align_stats(zx: np.ndarray, zy: np.ndarray) -> list[float]:
    """How strongly x_i goes with y_i, for i < min(dx, dy) in the given column order.

    BMI's sparse, 2-pair and latent-variable families couple x_i with y_i for the first i; with
    ten rows that pairing is far easier to read than any CCA or best-partner search over all
    dx * dy pairs, whose noise floor grows with d. Unlike everything else here, this reads the
    order of the columns, so a model trained with it sees datasets whose y columns were shuffled
    (`align_shuffle`), and learns to use the pairing only where the data show one. Entries: the
    Gaussian MI summed over the pairs (two scales), the mean r^2, the shares of pairs with n r^2
    above 4 and 9, the MI of the first 1, 2, 4, 8, 16 pairs, and how much the first four pairs'
    r^2 exceeds the mean."""
    n, k = zx.shape[0], min(zx.shape[1], zy.shape[1])
    r = (zx[:, :k] * zy[:, :k]).mean(0)
    r2 = np.minimum(r * r, RHO_MAX**2)
    mi = -0.5 * np.log1p(-r2)
    cum = np.cumsum(mi)
    return [
        mi.sum() / 5.0,
        np.log1p(mi.sum()),
        r2.mean(),
        (n * r2 > 4).mean(),
        (n * r2 > 9).mean(),
        *(cum[min(q, k) - 1] / 5.0 for q in (1, 2, 4, 8, 16)),
        r2[:4].mean() - r2.mean(),
    ]


def _neighbour_mi(sq_x: np.ndarray, sq_y: np.ndarray, ks: tuple[int, ...]) -> list[float]:
    """Nearest-neighbour MI at each k in `ks` (KSG's first estimator, in the mixed form of
    Gao et al., 2017).

    Block distances are Euclidean and the joint distance is their maximum (KSG allows any
    norm per block). Where the k-th neighbour sits at distance 0 (tied rows, discrete data),
    k becomes the number of rows at distance 0, as in Gao et al., so ties do not blow up."""
    m = sq_x.shape[0]
    ks = tuple(min(k, m - 1) for k in ks)
    joint = np.maximum(sq_x, sq_y)
    np.fill_diagonal(joint, np.inf)
    top = max(ks)
    kth = np.sort(np.partition(joint, top - 1, axis=1)[:, :top], axis=1)  # the `top` nearest, in order
    # The distances at the k-th neighbour are rounded to float32, as in the shipped weights' training
    # (rounding is monotone, so this is the k-th smallest of the float32 distances).
    kth = kth.astype(np.float32).astype(np.float64)
    zeros = None
    out = []
    for k in ks:
        rho = kth[:, k - 1 : k]
        if (rho > 0).all():
            k_i = float(k)
        else:
            zeros = (joint <= 0).sum(1) if zeros is None else zeros
            k_i = np.where(rho[:, 0] > 0, float(k), zeros)
        n_x = np.count_nonzero(sq_x <= rho, axis=1) - 1  # without the row itself
        n_y = np.count_nonzero(sq_y <= rho, axis=1) - 1
        out.append(float(np.mean(digamma(k_i) + digamma(m) - digamma(n_x + 1) - digamma(n_y + 1))))
    return out


def _knn_stats(zx: np.ndarray, zy: np.ndarray, u1: np.ndarray, v1: np.ndarray) -> list[float]:
    """Nearest-neighbour MI estimates on the token rows (at most `max_rows`): of the normal scores
    of all columns at k in KNN_KS, and of the first canonical pair at k = 3.

    Every other context entry reads correlations, which see monotone dependence only; these see
    any dependence the rows show (a V shape, clusters, categories), at a kNN estimator's bias,
    which the network learns to correct. Symmetric in x and y."""
    if zx.shape[0] < 4:
        return [0.0] * KNN_STATS
    full = _neighbour_mi(_sq_dists(zx), _sq_dists(zy), KNN_KS)
    top = _neighbour_mi(np.square(u1 - u1.T), np.square(v1 - v1.T), (3,))
    return [v / 3.0 for v in (*full, *top)]


def _block_stats(eig_xx: np.ndarray, eig_yy: np.ndarray, sxy: np.ndarray, n: int) -> list[float]:
    """How strongly columns correlate within x, within y and across, from the raw (unwhitened) blocks.

    Per block: the mean squared correlation r^2 (about 1/n under independence),
    log1p(n r^2) / 3, and the largest eigenvalue (singular value across) as a
    share of the block. With few rows these average hundreds of column pairs,
    so they are far steadier than a CCA: in dense and latent-variable families
    the within-block correlations come from the same parameters as the MI.
    Like `pair_stats`, they read the given columns (after the copula transform)."""

    def triple(mean_r2: float, top: float) -> list[float]:
        return [mean_r2, np.log1p(n * mean_r2) / 3.0, top]

    def within(w: np.ndarray) -> list[float]:
        d = len(w)  # ||C||_F^2 = sum of eigenvalues^2 = d + sum of squared off-diagonal correlations
        mean_r2 = max(float(w @ w) - d, 0.0) / (d * (d - 1)) if d > 1 else 0.0
        return triple(mean_r2, float(w.max()) / d)

    s = np.linalg.svd(sxy, compute_uv=False)
    return within(eig_xx) + within(eig_yy) + triple(float(s @ s) / sxy.size, float(s[0]) / np.sqrt(sxy.size))


def batch_features(
    datasets,
    cfg: FeatureConfig,
    rng: np.random.Generator | None = None,
    swap: np.ndarray | None = None,
    discrete: Discrete = "auto",
):
    """Stack features of datasets that share n: tokens (B, n, F), context (B, C), g (B,).

    `swap[i]` True computes dataset i's features with x and y exchanged (and `discrete`'s
    x and y parts with them).
    """
    toks, ctxs, gs = [], [], []
    for i, (x, y) in enumerate(datasets):
        disc = discrete
        if swap is not None and swap[i]:
            x, y = y, x
            if isinstance(disc, (tuple, list)) and len(disc) == 2:
                disc = (disc[1], disc[0])
        t, c, g = dataset_features(x, y, cfg, rng, disc)
        toks.append(t)
        ctxs.append(c)
        gs.append(g)
    return np.stack(toks), np.stack(ctxs), np.asarray(gs, dtype=np.float32)


def swap_view(tokens, ctx, cfg: FeatureConfig):
    """Features of (y, x) from those of (x, y), without recomputation.

    CCA is symmetric: swapping the blocks swaps the canonical variates u <-> v
    and the radial features; the context swaps its per-block entries.
    Works on (..., m, F) / (..., C) arrays, numpy or torch (it only indexes).
    """
    K = cfg.k_pairs
    perm = np.r_[np.arange(K, 2 * K), np.arange(K), 2 * K + 1, 2 * K]
    cperm = np.arange(cfg.context_dim)
    for a, b in cfg.ctx_swap_pairs:
        cperm[a], cperm[b] = b, a
    return tokens[..., perm], ctx[..., cperm]
