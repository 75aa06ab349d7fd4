"""Reading and writing corpus shards.

A shard is one `.npz` holding `x/<id>` and `y/<id>` arrays plus a `meta` JSON
string: one record per dataset (id, family, split, n, dx, dy, seed, true MI and
the family parameters). numpy writes zip entries with a fixed timestamp, so the
same content gives the same bytes; writes are atomic.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from estimators.atomic import atomic_path


def write_shard(path: str | os.PathLike, records: list[dict[str, Any]],
                arrays: list[tuple[np.ndarray, np.ndarray]]) -> None:
    if len(records) != len(arrays):
        raise ValueError("records and arrays differ in length")
    payload: dict[str, np.ndarray] = {}
    for rec, (x, y) in zip(records, arrays):
        payload[f"x/{rec['id']}"] = np.asarray(x, dtype=np.float64)
        payload[f"y/{rec['id']}"] = np.asarray(y, dtype=np.float64)
    payload["meta"] = np.array(json.dumps(records, sort_keys=True))
    # Build the archive ourselves: fixed entry order and timestamps, so same content -> same bytes.
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for key in sorted(payload):
                buf = io.BytesIO()
                np.lib.format.write_array(buf, payload[key], allow_pickle=False)
                info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_STORED
                zf.writestr(info, buf.getvalue())


def _records(z, path: Path) -> list[dict[str, Any]]:
    if "meta" not in z.files:
        raise ValueError(f"{path} is not a corpus shard (no 'meta' entry; a meta-dataset shard?)")
    return json.loads(str(z["meta"]))


@contextlib.contextmanager
def _open(path: str | os.PathLike):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus shard not found: {path}")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as err:  # truncated or not an .npz at all
        raise ValueError(f"{path} is not a readable corpus shard ({err}); rebuild it") from err
    with z:
        yield z, path


def read_meta(path: str | os.PathLike) -> list[dict[str, Any]]:
    with _open(path) as (z, p):
        return _records(z, p)


def iter_shard(path: str | os.PathLike) -> Iterator[tuple[dict[str, Any], np.ndarray, np.ndarray]]:
    """Yield (record, x, y) for each dataset in the shard, in stored order."""
    with _open(path) as (z, p):
        for rec in _records(z, p):
            yield rec, z[f"x/{rec['id']}"], z[f"y/{rec['id']}"]
