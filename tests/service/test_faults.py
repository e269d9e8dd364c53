"""Faults under load, short form: storage paused and restarted, a worker killed, an origin hanging.

This runs bench/faults.py's SHORT plan (about 30 s) against real gunicorn workers and a real
moto process; `.venv/bin/python bench/faults.py --full` is the long form. The report is
printed whatever happens. Recovery times are measured and printed, never asserted as
timings (the machine's cores are shared, and no test asserts a timing): the test only requires
that recovery happened before the harness gave up, together with every other requirement
bench/faults.py checks.
"""

from __future__ import annotations

import pytest

from bench.faults import SHORT, run

pytestmark = pytest.mark.timeout(300)


def test_faults_under_load_short_form(capsys: pytest.CaptureFixture[str]):
    report = run(SHORT)
    with capsys.disabled():
        print("\n" + report.text())
    assert report.failures == [], report.text()
    assert report.killed, "no worker was killed"
    assert all(seconds is not None for seconds in report.recovery.values())
    assert sum(report.paths_checked.values()) > 0
    assert report.lost == {"checkpoint": 0, "end": 0}
