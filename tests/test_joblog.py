"""A failing workflow job leaves its traceback in the log Snakemake points to."""

import sys

import pytest

from benchmarks.joblog import job_log


def test_job_log_keeps_stderr_and_the_traceback_of_a_failure(tmp_path):
    path, before = tmp_path / "logs" / "job.log", sys.stderr
    with pytest.raises(KeyError):
        with job_log(path):
            print("progress", file=sys.stderr)
            {}["no_such_param"]
    text = path.read_text()
    assert "progress" in text and "Traceback" in text and "no_such_param" in text
    assert sys.stderr is before  # restored


def test_job_log_of_a_successful_job(tmp_path):
    with job_log(tmp_path / "ok.log") as log:
        print("done", file=log)
    assert (tmp_path / "ok.log").read_text() == "done\n"
