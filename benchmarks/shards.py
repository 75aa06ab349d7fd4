"""Corpus shards: the library's one shard format (`estimators.synthetic.shards`), kind "corpus".

Each record holds a dataset's id, family, split, n, dx, dy, seed, true MI and family parameters;
x and y are stored as float64.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from estimators.synthetic.shards import Shard
from estimators.synthetic.shards import write_shard as _write

KIND = "corpus"


def write_shard(
    path: str | os.PathLike, records: list[dict[str, Any]], arrays: list[tuple[np.ndarray, np.ndarray]]
) -> None:
    _write(path, KIND, records, arrays, dtype=np.float64)


def read_meta(path: str | os.PathLike) -> list[dict[str, Any]]:
    return Shard(path, KIND).records


def iter_shard(path: str | os.PathLike) -> Iterator[tuple[dict[str, Any], np.ndarray, np.ndarray]]:
    """Yield (record, x, y) for each dataset in the shard, in stored order."""
    yield from Shard(path, KIND)
