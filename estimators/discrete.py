"""Categorical columns: which columns are categorical, and a recoding that ignores their labels.

The integer codes of a categorical column carry no order, so an estimator that reads them as
numbers (ranks, distances) changes its answer when the categories are relabelled, although MI
does not. `recode_categorical` replaces every categorical column by an order of its categories
that depends on the data only, never on the labels:

1. each categorical column is ordered by the categories' frequencies (a starting point that
   needs no other column);
2. each categorical column of x is ordered by the category means of y's normal scores,
   projected on their leading (count-weighted) principal direction: the order along which
   y moves most with the category; y's categorical columns likewise against x, both from the
   same partners, so that swapping x and y swaps the result. This step runs twice.

Ties (equal frequencies and equal projected means) fall back on the category's first
appearance in the sorted values, which is the only place where labels could still matter; with
a continuous partner they do not occur. When the projections are exactly symmetric (a balanced
binary column), their skewness cannot fix the direction, and a relabelling may reverse the
order; a reversed column is a decreasing map of the column, whose normal scores are exactly
negated, and MIST's features do not change under a column's sign. Categories are then coded 0..K-1 in that order, so a
relabelling (a bijection of the codes) gives the same recoded data. The order is chosen from
the data, so it is fitted: with many categories and few rows it makes independent data look
monotonely dependent. MIST is trained on data recoded the same way and learns that bias.

The default rule (`discrete="auto"`): a column is categorical when all its values are integers
and it has at most `MAX_LEVELS` distinct values, and at most half as many as rows (so that a
category has two rows on average). Integer columns with more levels (counts with a wide range)
stay ordinal: their ties are kept, their order is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata

MAX_LEVELS = 16

Discrete = Any  # "auto" | bool | (x_spec, y_spec), each spec a bool or a sequence of column indices


def _auto_columns(a: np.ndarray) -> list[int]:
    n = a.shape[0]
    out = []
    for j in np.flatnonzero(np.all(a == np.round(a), axis=0)):  # one pass rules out continuous columns
        levels = len(np.unique(a[:, j]))
        if 1 < levels <= min(MAX_LEVELS, n // 2):
            out.append(int(j))
    return out


def _explicit(spec: Any, d: int, block: str) -> list[int]:
    if isinstance(spec, (bool, np.bool_)):
        return list(range(d)) if spec else []
    if isinstance(spec, np.ndarray) and spec.ndim == 1:
        spec = spec.tolist()
    if isinstance(spec, (str, bytes)) or not isinstance(spec, Sequence):
        raise ValueError(f"discrete columns of {block} must be a bool or a list of column indices, got {spec!r}")
    cols = []
    for c in spec:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)):
            raise ValueError(f"discrete columns of {block} must be integer indices, got {c!r}")
        if not -d <= int(c) < d:
            raise ValueError(f"discrete column {int(c)} of {block} is out of range: {block} has {d} columns")
        cols.append(int(c) % d)
    if len(set(cols)) != len(cols):
        raise ValueError(f"discrete columns of {block} repeat an index: {list(spec)}")
    return sorted(cols)


def categorical_columns(x: np.ndarray, y: np.ndarray, discrete: Discrete = "auto") -> tuple[list[int], list[int]]:
    """The categorical columns of x and of y under `discrete`:

    - "auto" (or None): the default rule (module docstring);
    - True / False: every column of both / none;
    - (x_spec, y_spec): per block, True, False or a list of column indices.
    """
    if discrete is None or (isinstance(discrete, str) and discrete == "auto"):
        return _auto_columns(x), _auto_columns(y)
    if isinstance(discrete, (bool, np.bool_)):
        return (list(range(x.shape[1])), list(range(y.shape[1]))) if discrete else ([], [])
    if isinstance(discrete, (tuple, list)) and len(discrete) == 2:
        return _explicit(discrete[0], x.shape[1], "x"), _explicit(discrete[1], y.shape[1], "y")
    raise ValueError(f"discrete must be 'auto', True, False or a pair (x columns, y columns), got {discrete!r}")


def _codes(col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Category index of every row (by sorted value) and the category counts."""
    _, inverse, counts = np.unique(col, return_inverse=True, return_counts=True)
    return inverse.ravel(), counts


def _normal_scores(a: np.ndarray) -> np.ndarray:
    return ndtri(rankdata(a, axis=0, method="average") / (a.shape[0] + 1.0))


def _order_by(col: np.ndarray, z: np.ndarray | None) -> np.ndarray:
    """The column recoded to 0..K-1 in an order read from the data (see the module docstring);
    `z` holds the normal scores of the other block (None: by frequency alone)."""
    inv, counts = _codes(col)
    k = len(counts)
    key = -counts.astype(float)  # frequency first: most frequent category gets code 0
    if z is not None and z.shape[1]:
        means = (np.eye(k)[inv].T @ z) / counts[:, None]  # category means of the partner's scores
        centred = (means - (counts @ means) / counts.sum()) * np.sqrt(counts)[:, None]
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        if s.size and s[0] > 1e-12:
            proj = means @ vt[0]
            # The direction's sign is arbitrary (and follows the row order of `means`, i.e. the
            # labels): fix it by the count-weighted skewness of the projections, which reads no label.
            centre = proj - (counts @ proj) / counts.sum()
            if counts @ centre**3 < 0:
                proj = -proj
            key = proj
    rank = np.lexsort((np.arange(k), -counts, key))  # key, then frequency, then first sorted value
    code = np.empty(k, dtype=float)
    code[rank] = np.arange(k, dtype=float)
    return code[inv]


def recode_categorical(
    x: np.ndarray, y: np.ndarray, x_cols: Sequence[int], y_cols: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """x and y with their categorical columns recoded by a label-free order (module docstring)."""
    if not x_cols and not y_cols:
        return x, y
    x, y = np.array(x, dtype=np.float64), np.array(y, dtype=np.float64)
    for block, cols in ((x, x_cols), (y, y_cols)):
        for j in cols:
            block[:, j] = _order_by(block[:, j], None)
    for _ in range(2):  # both blocks at once from the same partners: swapping x and y swaps the result
        zx, zy = (_normal_scores(a) if cols else None for a, cols in ((x, y_cols), (y, x_cols)))
        new_x = [_order_by(x[:, j], zy) for j in x_cols]
        new_y = [_order_by(y[:, j], zx) for j in y_cols]
        for block, cols, new in ((x, x_cols, new_x), (y, y_cols, new_y)):
            for j, col in zip(cols, new):
                block[:, j] = col
    return x, y


def prepare(x: np.ndarray, y: np.ndarray, discrete: Discrete = "auto") -> tuple[np.ndarray, np.ndarray, dict]:
    """Recode the categorical columns of (x, y) under `discrete`; also return what was done."""
    x_cols, y_cols = categorical_columns(x, y, discrete)
    x, y = recode_categorical(x, y, x_cols, y_cols)
    return x, y, {"categorical_x": x_cols, "categorical_y": y_cols}
