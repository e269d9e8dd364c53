"""SIGTERM as an exception, so that a stopped job unwinds through its clean-up and says so."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

# The shell's convention for "ended by SIGTERM": 128 + 15.
EXIT_CODE = 128 + signal.SIGTERM

# How long a stopped job's exit may wait for what it left running (see `exit_within`).
EXIT_WAIT_SECONDS = 5.0

Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class Stopped(BaseException):
    """SIGTERM arrived. A BaseException, so that no `except Exception` on the way swallows it."""


_held = 0  # how many holds are on: `stops_held` blocks, and the hold from the start
_pending = False  # a SIGTERM came while one was on
_received = False  # a SIGTERM came since `sigterm_raises_stopped` began (or before, held)
_held_from_start = False  # `hold_stops_from_start` holds until `sigterm_raises_stopped` begins
_handler_before_start: Handler = signal.SIG_DFL


def _stop(signum: int, frame: FrameType | None) -> None:
    global _pending, _received
    _received = True
    # One stop is enough: a second SIGTERM must not interrupt the clean-up the first started.
    # A handler that does nothing rather than SIG_IGN: a worker process started while this
    # stop is held would inherit SIG_IGN through exec and then outlive its terminate().
    signal.signal(signal.SIGTERM, _stopping_already)
    if _held:
        _pending = True
        return
    raise Stopped


def _stopping_already(signum: int, frame: FrameType | None) -> None:
    """A second SIGTERM: the first one's clean-up is under way."""


def _release() -> None:
    """End one hold; the last one to end raises the stop that came during the holds."""
    global _held, _pending
    _held -= 1
    if not _held and _pending:
        _pending = False
        raise Stopped


@contextmanager
def stops_held() -> Iterator[None]:
    """A SIGTERM inside the block raises Stopped only when the block is done.

    For steps that must not be cut in half, such as starting a worker process: stopped
    half-way, the parent would not know the child it had already forked.
    """
    global _held
    _held += 1
    try:
        yield
    finally:
        _release()


def hold_stops_from_start() -> None:
    """Hold a SIGTERM from now until `sigterm_raises_stopped` begins; that block then raises it.

    The job's entry point calls it before importing anything that takes time: as PID 1, a
    process without a handler loses SIGTERM (see `sigterm_raises_stopped`), so a job stopped
    while its modules load or its options are read would run on until SIGKILL.
    """
    global _held, _held_from_start, _handler_before_start
    if threading.current_thread() is not threading.main_thread() or _held_from_start:
        return
    _held += 1
    _held_from_start = True
    _handler_before_start = signal.signal(signal.SIGTERM, _stop)


@contextmanager
def sigterm_raises_stopped() -> Iterator[None]:
    """Within the block, SIGTERM raises Stopped in the main thread.

    As PID 1 of a container, a process without a handler never dies of SIGTERM (the kernel
    drops signals whose action is the default), so a stopped Job would wait for SIGKILL.
    """
    global _held_from_start, _received
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals (e.g. main() called from a test thread)
        return
    held_from_start, _held_from_start = _held_from_start, False
    previous = _handler_before_start if held_from_start else signal.signal(signal.SIGTERM, _stop)
    try:
        if held_from_start:
            _release()  # a SIGTERM that came while the job started raises here
        yield
    except Exception as error:
        # Stopped can come out as another exception: Python 3.11 wraps whatever a
        # __set_name__ raises in a RuntimeError (a stop while a module defines a class), and
        # a library may re-raise what it caught. Once a SIGTERM has come, it is the reason.
        if _received:
            raise Stopped from error
        raise
    finally:
        _received = False
        signal.signal(signal.SIGTERM, previous)


def exit_within(seconds: float, code: int) -> None:
    """From now on, end the process with `code` after `seconds` at the latest.

    A stopped job exits the usual way, so that the interpreter's exit handlers still end what
    they end (its worker process, if the stop cut the worker's own ending short). But that exit
    also waits for every thread still running, such as an upload in flight, which may wait up
    to its read timeout, longer than the grace period: this daemon thread does not wait.
    """

    def end() -> None:
        sys.stderr.flush()
        os._exit(code)

    timer = threading.Timer(seconds, end)
    timer.daemon = True
    timer.start()
