"""SIGTERM stops the sitemap job cleanly: one line, a non-zero exit, no worker left behind.

The defect the container run found (as PID 1 the job ignored SIGTERM and waited for SIGKILL),
checked here on the host too, so it runs even where no container can.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.sitemaps.stopping import EXIT_CODE, Stopped, sigterm_raises_stopped, stops_held

# Far more rows than a run can write before the signal: the job is mid-generation when it comes.
ENDLESS = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 100000000) "
    "SELECT 'https://example.test/item/' || i, NULL FROM n"
)


def _group(pgid: int) -> list[int]:
    """The processes of process group `pgid`, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def test_sigterm_during_generate_exits_with_one_line(tmp_path) -> None:
    database = tmp_path / "catalog.db"
    sqlite3.connect(database).close()
    out = tmp_path / "out"
    job = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.sitemaps",
            "generate",
            "--source",
            "sql",
            "--database-url",
            f"sqlite:///{database}",
            "--query",
            ENDLESS,
            "--base-url",
            "https://example.test/sitemaps",
            "--out",
            str(out),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # its own process group: the worker it spawns joins it
    )
    deadline = time.monotonic() + 60
    # Once the first file is full, the job starts its worker process for the far half.
    while len(_group(job.pid)) < 2 and time.monotonic() < deadline:
        assert job.poll() is None, job.communicate(timeout=10)[1]
        time.sleep(0.05)
    assert len(_group(job.pid)) >= 2, "the worker process never started"
    job.send_signal(signal.SIGTERM)
    _, stderr = job.communicate(timeout=30)
    assert job.returncode == EXIT_CODE, stderr
    last = stderr.strip().splitlines()[-1]
    assert (
        last == "sitemaps: stopped by SIGTERM before generate finished; nothing was half-published"
    )
    assert "Traceback" not in stderr
    deadline = time.monotonic() + 10
    while _group(job.pid) and time.monotonic() < deadline:  # the worker went with it
        time.sleep(0.05)
    assert _group(job.pid) == []


def test_a_stop_during_a_step_that_must_not_be_cut_waits_for_its_end() -> None:
    """SIGTERM while the SQLite worker process is being started: Stopped comes after the start."""
    steps: list[str] = []

    def step() -> None:
        with sigterm_raises_stopped():
            with stops_held():
                os.kill(os.getpid(), signal.SIGTERM)
                steps.append("finished the step")
            steps.append("went on")  # never reached

    with pytest.raises(Stopped):
        step()
    assert steps == ["finished the step"]
