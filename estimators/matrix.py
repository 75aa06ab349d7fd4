"""MI between many pairs: the MI matrix of a dataset's columns (or column groups), and the MI of
every feature with a target.

    >>> m = estimators.mi_matrix(df, estimator="mist")            # DataFrame in -> DataFrame out
    >>> m = estimators.mi_matrix(X, groups={"a": [0, 1], "b": [2]})
    >>> estimators.rank_features(X_df, y, estimator="ksg")        # sorted, most informative first

All pairs go to the estimator in one `estimate_batch` call, so an amortised estimator (MIST,
MIST_QR, InfoNet) scores the p (p - 1) / 2 pairs in a few forward passes. The matrix is
symmetric, with NaN on the diagonal (a continuous variable's MI with itself is infinite).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from estimators.base import Estimator
from estimators.discrete import Discrete
from estimators.registry import get
from estimators.units import check_unit
from estimators.validation import as_2d, column_names


def _estimator(estimator: str | Estimator, params: Mapping[str, Any] | None) -> Estimator:
    if isinstance(estimator, Estimator):
        if params:
            raise ValueError("pass estimator parameters either in the Estimator instance or as params, not both")
        return estimator
    return get(estimator, **dict(params or {}))


def _column_names(data: Any, width: int) -> tuple[list[str], bool]:
    """The data's column names and whether it had any (a DataFrame, a named Series); else "0", "1", ..."""
    names = column_names(data)
    return (names, True) if names is not None else ([str(j) for j in range(width)], False)


def _groups(
    groups: Mapping[str, Sequence] | Sequence[Sequence] | None, names: list[str]
) -> tuple[list[str], list[list[int]]]:
    """(labels, column indices) of each variable: one per column, or the given groups. Columns are
    named by index or, for a DataFrame, by name; a column in two groups is an error."""
    if groups is None:
        if len(names) < 2:
            raise ValueError(f"an MI matrix needs at least two variables, got {len(names)} column(s)")
        return list(names), [[j] for j in range(len(names))]
    items = list(groups.items()) if isinstance(groups, Mapping) else [(None, g) for g in groups]
    labels, index, seen = [], [], {}
    for pos, (label, cols) in enumerate(items):
        if isinstance(cols, (str, int, np.integer)):
            cols = [cols]
        idx = []
        for c in cols:
            if isinstance(c, str):
                if c not in names:
                    raise ValueError(f"groups: unknown column {c!r}; columns: {names}")
                j = names.index(c)
            elif isinstance(c, (int, np.integer)) and not isinstance(c, bool) and -len(names) <= c < len(names):
                j = int(c) % len(names)
            else:
                raise ValueError(f"groups: column {c!r} is neither a column name nor an index below {len(names)}")
            if j in seen:
                raise ValueError(f"groups: column {names[j]!r} is in group {seen[j]!r} and in another one")
            seen[j] = label if label is not None else pos
            idx.append(j)
        if not idx:
            raise ValueError(f"groups: group {label if label is not None else pos!r} has no columns")
        labels.append(str(label) if label is not None else "+".join(names[j] for j in idx))
        index.append(idx)
    if len(labels) < 2:
        raise ValueError(f"an MI matrix needs at least two variables, got {len(labels)}")
    return labels, index


def mi_matrix(
    data: Any,
    estimator: str | Estimator = "mist",
    groups: Mapping[str, Sequence] | Sequence[Sequence] | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    discrete: Discrete = "auto",
    unit: str = "nats",
    return_estimates: bool = False,
):
    """The (p, p) matrix of MI between every pair of columns, or of column groups.

    `data`: an (n, p) array or a DataFrame. `groups`: None (each column is a variable), a mapping
    {label: columns} or a list of column lists (columns by index or DataFrame name).
    Returns a DataFrame labelled by the column (group) names when `data` is a DataFrame or the
    groups are named, else a numpy array; with `return_estimates`, also {(i, j): Estimate} for
    i < j (intervals, failures and their reasons). A failed pair is NaN in the matrix."""
    check_unit(unit)
    arr = as_2d(data, "data")
    names, named = _column_names(data, arr.shape[1])
    labels, index = _groups(groups, names)
    est = _estimator(estimator, params)
    pairs = [(i, j) for i in range(len(index)) for j in range(i + 1, len(index))]
    datasets = [(arr[:, index[i]], arr[:, index[j]]) for i, j in pairs]
    ests = est.estimate_batch(datasets, discrete=discrete, unit=unit)
    out = np.full((len(labels), len(labels)), np.nan)
    for (i, j), e in zip(pairs, ests):
        out[i, j] = out[j, i] = e.mi if e.ok else np.nan
    if named or isinstance(groups, Mapping):
        import pandas as pd

        out = pd.DataFrame(out, index=labels, columns=labels)
        out.attrs.update(estimator=est.name, unit=unit)
    if return_estimates:
        return out, dict(zip(pairs, ests))
    return out


def rank_features(
    X: Any,
    y: Any,
    estimator: str | Estimator = "mist",
    *,
    params: Mapping[str, Any] | None = None,
    discrete: Discrete = "auto",
    unit: str = "nats",
):
    """MI of each column of X with y, most informative first, as a DataFrame with columns
    feature, mi, lower, upper (NaN where the estimator gives no interval) and ok.

    One `estimate_batch` call over the p (column, y) datasets. Features are named by the
    DataFrame's columns, else by index."""
    import pandas as pd

    check_unit(unit)
    arr = as_2d(X, "X")
    target = as_2d(y, "y")
    if target.shape[0] != arr.shape[0]:
        raise ValueError(f"X and y must have the same number of rows: X has {arr.shape[0]}, y has {target.shape[0]}")
    names, _ = _column_names(X, arr.shape[1])
    est = _estimator(estimator, params)
    ests = est.estimate_batch([(arr[:, [j]], target) for j in range(arr.shape[1])], discrete=discrete, unit=unit)
    rows = [
        {
            "feature": name,
            "mi": e.mi if e.ok else np.nan,
            "lower": e.lower if e.ok and e.lower is not None else np.nan,
            "upper": e.upper if e.ok and e.upper is not None else np.nan,
            "ok": e.ok,
        }
        for name, e in zip(names, ests)
    ]
    table = pd.DataFrame(rows).sort_values("mi", ascending=False, na_position="last", kind="stable")
    table = table.reset_index(drop=True)
    table.attrs.update(estimator=est.name, unit=unit)
    return table
