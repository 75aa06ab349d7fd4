"""Inputs of the paper-style MIST: the raw rows, each column z-scored. No ranks, no CCA, no statistics.

One dataset (x: n x dx, y: n x dy) becomes the values of at most `max_rows` rows, laid out as
[x_1 .. x_dx, y_1 .. y_dy] and zero-padded to the batch's largest dx + dy; the context is
(n, dx, dy), from which the network builds its masks and which tells the head how many rows
there were (the subsample hides it).

The subsample keeps rows at evenly spaced positions of the order of a row key that reads the
values only (the sum of the row's sorted x values plus that of its sorted y values), so it does
not depend on the order of the rows nor on the order of the columns within x or within y: the
estimator stays invariant to both, exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class PaperFeatures:
    max_rows: int | None = 64  # rows fed to the network (None: all); the feature attention costs O(rows d^2)
    clip: float = 10.0  # z-scores are clipped to +-clip: a Cauchy-tailed column would otherwise swamp the rest
    # The training loop and the base adapter ask these of any feature config: raw values, no recoding.
    normalisation: str = "zscore"
    discrete_recode: bool = False

    def __post_init__(self) -> None:
        if self.max_rows is not None and (isinstance(self.max_rows, bool) or int(self.max_rows) < 2):
            raise ValueError(f"max_rows must be an integer >= 2 or None, got {self.max_rows!r}")
        if not self.clip > 0:
            raise ValueError(f"clip must be > 0, got {self.clip!r}")
        if self.normalisation != "zscore" or self.discrete_recode:
            raise ValueError("the paper-style MIST reads z-scored raw values only (normalisation: zscore)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PaperFeatures:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown paper feature keys {sorted(unknown)}")
        return cls(**d)


def _zscore(a: np.ndarray) -> np.ndarray:
    a = a - a.mean(0)
    sd = a.std(0)
    sd[sd <= 0] = 1.0  # a constant column stays zeros (the base class drops them before estimates)
    return a / sd


def dataset_values(x: np.ndarray, y: np.ndarray, cfg: PaperFeatures) -> np.ndarray:
    """The network's rows of one dataset: (m, dx + dy) float32, m = min(n, max_rows)."""
    zx, zy = _zscore(np.asarray(x, dtype=np.float64)), _zscore(np.asarray(y, dtype=np.float64))
    n = zx.shape[0]
    if cfg.max_rows is not None and n > cfg.max_rows:
        # Sorting within a row first makes the key exactly invariant to column order (a plain sum
        # may round differently); lexsort breaks exact ties by a second key, then by the y key.
        kx, ky = np.sort(zx, axis=1).sum(1), np.sort(zy, axis=1).sum(1)
        order = np.lexsort((ky, kx + ky))
        rows = order[np.round(np.linspace(0, n - 1, cfg.max_rows)).astype(int)]
        zx, zy = zx[rows], zy[rows]
    out = np.concatenate([zx, zy], axis=1)
    np.clip(out, -cfg.clip, cfg.clip, out=out)
    return out.astype(np.float32)


def batch_features(
    datasets,
    cfg: PaperFeatures,
    rng: np.random.Generator | None = None,
    swap: np.ndarray | None = None,
):
    """Datasets that share n -> values (B, m, L) with L the largest dx + dy, context (B, 3) = (n, dx, dy)
    and a zero side input (B,) (the training loop's interface; this design has no side input).

    `swap[i]` True reads dataset i as (y, x). `rng` is accepted for the loop's interface and unused:
    nothing here is random."""
    del rng
    vals, ctx = [], []
    for i, (x, y) in enumerate(datasets):
        if swap is not None and swap[i]:
            x, y = y, x
        vals.append(dataset_values(x, y, cfg))
        ctx.append((x.shape[0], x.shape[1], y.shape[1]))
    m = {v.shape[0] for v in vals}
    if len(m) != 1:
        raise ValueError(f"a batch must share one n (rows after subsampling: {sorted(m)})")
    width = max(v.shape[1] for v in vals)
    tok = np.zeros((len(vals), m.pop(), width), dtype=np.float32)
    for i, v in enumerate(vals):
        tok[i, :, : v.shape[1]] = v
    return tok, np.asarray(ctx, dtype=np.float32), np.zeros(len(vals), dtype=np.float32)
