"""The one shard format: many (x, y) datasets and their records in one file.

Test corpora (the benchmark) and the MIST meta-dataset (training) both store their datasets so.
A shard is an uncompressed `.npz` (a zip of `.npy` entries, readable with `numpy.load`):

- `meta`: JSON of {"kind": ..., "header": {...}, "records": [one dict per dataset]};
- `n`, `dx`, `dy`: int64, one entry per dataset;
- `x`, `y`: every dataset's rows, concatenated row-major (float64 for corpora, float32 for the
  meta-dataset, which is read back as float64).

Entries are written in a fixed order with a fixed timestamp, so the same content gives the same
bytes; writes are atomic. A file that cannot be read, or that holds another kind of shard, is a
ValueError naming the file.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from estimators.atomic import atomic_path


def write_shard(
    path: str | os.PathLike,
    kind: str,
    records: list[dict[str, Any]],
    arrays: list[tuple[np.ndarray, np.ndarray]],
    dtype: Any = np.float64,
    header: dict[str, Any] | None = None,
) -> None:
    """Write datasets `arrays` [(x, y), ...] with their `records` as one shard of `kind`."""
    if len(records) != len(arrays):
        raise ValueError(f"{len(records)} records for {len(arrays)} datasets")
    shapes = [(np.shape(x), np.shape(y)) for x, y in arrays]
    if any(len(sx) != 2 or len(sy) != 2 or sx[0] != sy[0] for sx, sy in shapes):
        raise ValueError("every dataset needs 2-D x and y with the same number of rows")
    empty = np.zeros(0, dtype=dtype)
    payload = {
        "meta": np.array(json.dumps({"kind": kind, "header": header or {}, "records": records}, sort_keys=True)),
        "n": np.array([sx[0] for sx, _ in shapes], dtype=np.int64),
        "dx": np.array([sx[1] for sx, _ in shapes], dtype=np.int64),
        "dy": np.array([sy[1] for _, sy in shapes], dtype=np.int64),
        "x": np.concatenate([np.asarray(x, dtype=dtype).ravel() for x, _ in arrays] or [empty]),
        "y": np.concatenate([np.asarray(y, dtype=dtype).ravel() for _, y in arrays] or [empty]),
    }
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for key in sorted(payload):
                buf = io.BytesIO()
                np.lib.format.write_array(buf, payload[key], allow_pickle=False)
                zf.writestr(zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())


class Shard:
    """One shard in memory; datasets are cut out on demand, as float64."""

    def __init__(self, path: str | os.PathLike, kind: str) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{kind} shard not found: {self.path}")
        try:
            with np.load(self.path, allow_pickle=False) as z:
                if "meta" not in z.files:
                    raise ValueError(f"{self.path} is not a {kind} shard (no 'meta' entry)")
                meta = json.loads(str(z["meta"]))
                arrays = {k: z[k] for k in ("n", "dx", "dy", "x", "y")}
        except (OSError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as err:
            raise ValueError(
                f"{self.path} is not a readable {kind} shard ({type(err).__name__}: {err}); rebuild it"
            ) from None
        except ValueError as err:
            if "is not a" in str(err):
                raise
            raise ValueError(f"{self.path} is not a readable {kind} shard ({err}); rebuild it") from None
        if meta.get("kind") != kind:
            raise ValueError(f"{self.path} is not a {kind} shard (it holds a {meta.get('kind')!r} shard)")
        self.header: dict[str, Any] = meta["header"]
        self.records: list[dict[str, Any]] = meta["records"]
        self.n, self.dx, self.dy, self.x, self.y = (arrays[k] for k in ("n", "dx", "dy", "x", "y"))
        self._ox = np.concatenate([[0], np.cumsum(self.n * self.dx)])
        self._oy = np.concatenate([[0], np.cumsum(self.n * self.dy)])

    def __len__(self) -> int:
        return len(self.records)

    def dataset(self, i: int) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
        n, dx, dy = int(self.n[i]), int(self.dx[i]), int(self.dy[i])
        x = self.x[self._ox[i] : self._ox[i + 1]].reshape(n, dx).astype(np.float64)
        y = self.y[self._oy[i] : self._oy[i + 1]].reshape(n, dy).astype(np.float64)
        return self.records[i], x, y

    def __iter__(self) -> Iterator[tuple[dict[str, Any], np.ndarray, np.ndarray]]:
        return (self.dataset(i) for i in range(len(self)))
