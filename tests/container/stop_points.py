"""SIGTERM at the n-th line of the job's own code that the calling thread runs.

A stop at an exact point of a run rather than at a moment: a sweep runs the job once per line
and stops it there, so that no window between two lines can hide from it behind timing. The
signal is real (os.kill); its handler runs where Python runs handlers, right after the kill.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
JOB_CODE = ROOT / "service" / "sitemaps"

# Which code a sweep stops in: a test of a function's code object.
Traced = Callable[[CodeType], bool]


def in_files(*names: str) -> Traced:
    """The job's modules named (e.g. "writer.py"), all of their functions."""
    paths = {str(JOB_CODE / name) for name in names}
    return lambda code: code.co_filename in paths


def in_functions(name: str, *qualnames: str) -> Traced:
    """Only the functions named (qualified names) of the job's module `name`."""
    path = str(JOB_CODE / name)
    return lambda code: code.co_filename == path and code.co_qualname in qualnames


@dataclass
class Lines:
    """The job's lines run so far, and where the stop was sent."""

    stop_at: int | None
    count: int = 0
    stopped_at: str | None = None


@contextmanager
def sigterm_at_line(stop_at: int | None, *traced: Traced) -> Iterator[Lines]:
    """Within the block, count the lines of `traced` code this thread runs; at line `stop_at`,
    send SIGTERM to this process. With `stop_at` None it only counts, to learn how many
    points a sweep has.
    """
    lines = Lines(stop_at)

    def line(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            lines.count += 1
            if lines.count == lines.stop_at:
                where = f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}"
                lines.stopped_at = f"{where} ({frame.f_code.co_qualname})"
                os.kill(os.getpid(), signal.SIGTERM)
        return line

    def call(frame: FrameType, event: str, arg: Any) -> Any:
        return line if any(test(frame.f_code) for test in traced) else None

    previous = sys.gettrace()
    sys.settrace(call)
    try:
        yield lines
    finally:
        # A handler that raises inside the trace function ends the tracing; this ends it otherwise.
        sys.settrace(previous)
