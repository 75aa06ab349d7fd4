"""Input validation shared by every estimator (run once, in the base class).

pandas DataFrames and Series are accepted wherever arrays are. pandas is never imported here
(importing the library stays cheap): an object can only be a DataFrame if pandas is already in
`sys.modules`, so that is where `_pandas_object` looks.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

# Values beyond this overflow float64 in squared distances and covariances.
MAX_ABS = 1e150
# A column that varies by less than this (but not 0) underflows in the same squares: its
# standard deviation comes out 0 and it would silently be treated as constant.
MIN_SPREAD = 1e-150


def is_integer(v: Any) -> bool:
    """An int or numpy integer, and not a bool (which Python counts as an int)."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _pandas_object(a: Any) -> bool:
    """`a` is a pandas DataFrame or Series (False without importing pandas when it is not loaded)."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(a, (pd.DataFrame, pd.Series))


def column_names(a: Any) -> list[str] | None:
    """The column names of a DataFrame (a Series: its name), as str; None for anything else and
    for pandas' default labels 0..d-1 (or an unnamed Series), which say no more than the position.

    For modules that report per-column results (independence test, MI matrix) and for `info`."""
    if not _pandas_object(a):
        return None
    labels = list(a.columns) if a.ndim == 2 else [a.name]
    # is_integer, not ==: columns named False/True would otherwise pass for positions 0/1
    if labels == [None] or all(is_integer(c) and c == i for i, c in enumerate(labels)):
        return None
    return [str(c) for c in labels]


def _frame_to_array(a: Any, what: str) -> np.ndarray:
    """A DataFrame or Series as an array, refusing non-numeric columns by name.

    np.asarray alone would turn a string column into an object array (an error that cannot say
    which column) and a category column with integer categories into its labels, silently."""
    pd = sys.modules["pandas"]
    dtypes = list(a.dtypes.items()) if a.ndim == 2 else [(a.name, a.dtype)]
    bad = [
        (c, dt)
        for c, dt in dtypes
        if isinstance(dt, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(dt)  # bool counts as numeric
    ]
    if bad:
        cols = ", ".join(f"{c!r} ({dt})" for c, dt in bad)
        raise ValueError(
            f"{what} has non-numeric column(s) {cols}; estimators read numbers: encode a categorical column as "
            f"integer codes (df[c] = df[c].astype('category').cat.codes; with mist or mist_qr, also pass "
            f"discrete=... to mark it categorical), or drop it"
        )
    complex_ = [c for c, dt in dtypes if pd.api.types.is_complex_dtype(dt)]
    if complex_:
        raise ValueError(f"{what} must be real-valued; complex column(s) {complex_}")
    # Not np.asarray: mixed dtypes (float and bool) and nullable ones (Int64, boolean) would give an
    # object array. pd.NA becomes NaN, which the check in `validate_pair` then reports by row.
    return a.to_numpy(dtype=np.float64, na_value=np.nan)


def as_2d(a: Any, what: str) -> np.ndarray:
    if isinstance(a, (str, bytes)):
        raise ValueError(f"{what} must be a numeric array, got {type(a).__name__}")
    if _pandas_object(a):
        arr = _frame_to_array(a, what)
    else:
        try:
            arr = np.asarray(a)
        except Exception as err:  # ragged nested lists and the like
            raise ValueError(f"{what} could not be read as an array: {err}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{what} must have a numeric dtype, got {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{what} must be real-valued, got {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[:, None]
    elif arr.ndim != 2:
        raise ValueError(f"{what} must be 1-D or 2-D (n, d), got an array of rank {arr.ndim} with shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{what} has no columns (d = 0)")
    return np.ascontiguousarray(arr, dtype=np.float64)


def check_values(arr: np.ndarray, what: str, *, allow_constant: bool = True) -> None:
    """Raise ValueError naming `what` if the (n, d) float array has NaN or inf, values beyond
    MAX_ABS, a column spread that underflows, or (unless allowed) a constant column."""
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        raise ValueError(f"{what} contains NaN or inf (first at row {bad[0]}, column {bad[1]})")
    if np.abs(arr).max() > MAX_ABS:
        raise ValueError(f"{what} has values of magnitude above {MAX_ABS:g}; rescale the data")
    spread = np.ptp(arr, axis=0)
    tiny = np.flatnonzero((spread > 0) & (spread < MIN_SPREAD))
    if tiny.size:
        raise ValueError(
            f"{what} column(s) {tiny.tolist()} vary by less than {MIN_SPREAD:g} (their "
            "squares underflow float64); rescale the data"
        )
    if not allow_constant:
        const = np.flatnonzero(spread == 0)
        if const.size:
            raise ValueError(f"{what} has constant column(s) {const.tolist()}, which this estimator cannot handle")


def validate_pair(
    x: Any, y: Any, *, min_n: int = 2, allow_constant: bool = True, extra: Callable[[int, int], None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return (x, y) as float64 (n, d) arrays or raise ValueError naming the problem."""
    x = as_2d(x, "x")
    y = as_2d(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same number of rows (n): x has {x.shape[0]}, y has {y.shape[0]}")
    n = x.shape[0]
    if n < min_n:
        raise ValueError(f"too few rows: n = {n}, this estimator needs at least {min_n}")
    for arr, what in ((x, "x"), (y, "y")):
        check_values(arr, what, allow_constant=allow_constant)
    if extra is not None:
        extra(x.shape[1], y.shape[1])
    return x, y
