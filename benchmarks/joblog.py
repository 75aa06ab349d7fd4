"""The log file of one workflow job."""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def job_log(path: str | Path) -> Iterator[IO[str]]:
    """Send stderr (progress bars, warnings) to `path` for the job's duration; a failure writes its
    traceback there before it propagates, so the log Snakemake points to says what went wrong."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as log, contextlib.redirect_stderr(log):
        try:
            yield log
        except BaseException:
            traceback.print_exc(file=log)
            raise
