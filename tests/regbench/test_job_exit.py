"""A job's immediate exit loses nothing it wrote: the log and the standard streams are flushed, the status is 0."""

from __future__ import annotations

import subprocess
import sys


def test_exit_job_flushes_the_log_and_streams_and_exits_zero(tmp_path):
    log = tmp_path / "job.log"
    script = (f"import logging\nlogging.basicConfig(filename={str(log)!r}, level=logging.INFO)\n"
              "logging.info('written')\nprint('to stdout', end='')\n"
              "from regbench.job_exit import exit_job\nexit_job()\nraise SystemExit(3)  # not reached\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "to stdout"
    assert "written" in log.read_text()
