"""Per-pod budgets: downloads in flight, and the memory that conversions may take at once.

Every gunicorn worker of a pod draws on the same ledgers, kept in shared memory that the
master makes before it forks (`share()`); a process that has none makes its own. A worker
that dies gives its share back through the master (`forget`).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import multiprocessing
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

from PIL import Image

from service import imaging, offload
from service.limits import BYTES_PER_PIXEL
from service.settings import ServingSettings, conversion_budget

# A conversion that finds the budget spent waits this long for it, then answers 503.
BUDGET_WAIT_SECONDS = 5.0
_POLL_SECONDS = 0.05
# After a conversion this large, hand the freed memory back to the kernel. Smaller ones leave
# at most this much with the worker, within the room its share of the memory limit keeps
# over its idle size (WORKER_BYTES against about 52 MiB measured), and spare the request
# malloc_trim's cost (about 14 ms and 6,000 page faults after a 3 MP PNG).
TRIM_ABOVE_BYTES = 64 * 1024 * 1024
_SLOTS = 128


class BusyError(Exception):
    """The pod is at a budget; the client should retry after a pause (503 with Retry-After)."""


class ConversionTimeoutError(BusyError):
    """A conversion ran past CONVERSION_TIMEOUT_SECONDS; the request gives up on it."""


class Ledger:
    """Amounts in use by each process (pid, amount), in memory shared across fork."""

    def __init__(self) -> None:
        shared = multiprocessing.Array("q", 2 * _SLOTS)
        self._lock = shared.get_lock()
        # The raw array under the one lock: the synchronized wrapper would lock per cell.
        self._cells = cast("ctypes.Array[ctypes.c_int64]", shared.get_obj())

    def try_take(self, amount: int, cap: int) -> bool:
        """Take `amount` if the pod's total stays within `cap`."""
        pid = os.getpid()
        with self._lock:
            cells = self._cells
            if sum(cells[1::2]) + amount > cap:
                return False
            pids = cells[0::2]
            slot = pid if pid in pids else 0  # this process's cell, or a free one
            if slot not in pids:
                return False
            index = 2 * pids.index(slot)
            cells[index] = pid
            cells[index + 1] += amount
            return True

    def give_back(self, amount: int) -> None:
        pid = os.getpid()
        with self._lock:
            cells = self._cells
            pids = cells[0::2]
            if pid in pids:
                index = 2 * pids.index(pid)
                cells[index + 1] -= amount
                if cells[index + 1] <= 0:
                    cells[index] = cells[index + 1] = 0

    def forget(self, pid: int) -> None:
        """Drop what a dead process held."""
        with self._lock:
            cells = self._cells
            for index in range(0, len(cells), 2):
                if cells[index] == pid:
                    cells[index] = cells[index + 1] = 0

    def total(self) -> int:
        with self._lock:
            return sum(self._cells[1::2])


@dataclass
class _Ledgers:
    downloads: Ledger
    memory: Ledger


_ledgers: _Ledgers | None = None


def share() -> None:
    """Make the pod's ledgers; called by gunicorn's master before it forks the workers."""
    global _ledgers
    _ledgers = _Ledgers(Ledger(), Ledger())


def forget(pid: int) -> None:
    if _ledgers is not None:
        _ledgers.downloads.forget(pid)
        _ledgers.memory.forget(pid)


def _shared() -> _Ledgers:
    if _ledgers is None:
        share()
    assert _ledgers is not None
    return _ledgers


@dataclass(frozen=True)
class Admission:
    """The pod's limits, as the routes apply them."""

    settings: ServingSettings
    workers: int

    @property
    def budget_bytes(self) -> int:
        return conversion_budget(self.settings, self.workers)

    @contextlib.contextmanager
    def download_slot(self) -> Iterator[None]:
        """One of MAX_DOWNLOADS, or BusyError at once."""
        ledger = _shared().downloads
        if not ledger.try_take(1, self.settings.max_downloads):
            raise BusyError(
                f"{self.settings.max_downloads} downloads are in flight already; try again later."
            )
        try:
            yield
        finally:
            ledger.give_back(1)

    def check_upload(self, file: IO[bytes], max_pixels: int) -> None:
        """imaging.check, then that the conversion could fit this pod's budget.

        So no image is accepted that could not be converted. One open serves both.
        """
        with imaging.opened(file, max_pixels) as image:
            # The cost first: the check may have the decoder scale a JPEG down.
            cost = image_cost(image, file, max_pixels)
            imaging.check_of(image, file, max_pixels)
            self._within_budget(cost)

    def _within_budget(self, cost: int | None) -> int | None:
        budget = self.budget_bytes
        if cost is not None and cost > budget:
            raise imaging.ImageRejectedError(
                f"Converting this image takes about {_mib(cost)} MiB, more than the "
                f"{_mib(budget)} MiB this pod has for conversions."
            )
        return cost

    def greyscale(self, file: IO[bytes], max_pixels: int) -> imaging.Converted:
        """imaging.greyscale within the memory budget and the conversion deadline."""
        # One open serves the cost and the conversion: a JPEG's header costs 0.1 ms to read.
        image = imaging.opened(file, max_pixels)
        try:
            cost = self._within_budget(image_cost(image, file, max_pixels))
            ledger = None if cost is None else self._take_memory(cost)
        except BaseException:
            image.close()
            raise
        if cost is None or ledger is None:  # imaging refuses it at once, and says why
            with image:
                return imaging.greyscale_of(image, file, max_pixels)

        def convert() -> imaging.Converted:
            try:
                return imaging.greyscale_of(image, file, max_pixels)
            finally:
                # The thread, not the request, closes the image and gives the memory back:
                # it may outlive a timeout.
                image.close()
                ledger.give_back(cost)
                if cost > TRIM_ABOVE_BYTES:
                    trim_memory()

        seconds = self.settings.conversion_timeout_seconds
        try:
            return offload.cpu(convert, seconds)
        except offload.DeadlineExceededError:
            raise ConversionTimeoutError(
                f"The conversion did not finish within {seconds:g} seconds; try again later."
            ) from None

    def _take_memory(self, cost: int) -> Ledger:
        """The pod's memory ledger, `cost` taken from it; BusyError after waiting in vain."""
        ledger = _shared().memory
        waited_until = time.monotonic() + BUDGET_WAIT_SECONDS
        while not ledger.try_take(cost, self.budget_bytes):
            if time.monotonic() >= waited_until:
                raise BusyError("The server is converting as many images as fits; try again later.")
            time.sleep(_POLL_SECONDS)  # a greenlet's sleep under gevent
        return ledger


def conversion_cost(file: IO[bytes], max_pixels: int) -> int | None:
    """Peak bytes a conversion of `file` may take, from its header alone.

    None for what imaging refuses before decoding: no image, or more than `max_pixels`.
    """
    position = file.tell()
    try:
        with imaging.opened(file, max_pixels) as image:
            return image_cost(image, file, max_pixels)
    except imaging.ImageRejectedError:
        return None
    finally:
        file.seek(position)


def image_cost(image: Image.Image, file: IO[bytes], max_pixels: int) -> int | None:
    """conversion_cost() of an image that imaging.opened() gave for `file`."""
    position = file.tell()
    try:
        file.seek(0, os.SEEK_END)
        size = file.tell()
        fmt = imaging.format_of(image)
        frames = 1 if fmt == "JPEG" else int(getattr(image, "n_frames", 1))
        width, height = image.size
        kind = cost_kind(fmt, frames, file)
    except Exception:  # counting a damaged file's frames fails; imaging says why
        return None
    finally:
        file.seek(position)
    pixels = width * height * max(frames, 1)
    if pixels > max_pixels:
        return None
    return pixels * BYTES_PER_PIXEL.get(kind, max(BYTES_PER_PIXEL.values())) + size


def cost_kind(fmt: str, frames: int, file: IO[bytes]) -> str:
    """The row of BYTES_PER_PIXEL that a conversion of this image follows."""
    if frames > 1:
        return "animation"
    if fmt == "WEBP" and imaging.is_lossless_webp(file):
        return "WEBP lossless"
    return fmt


def _mib(amount: int) -> int:
    return math.ceil(amount / (1024 * 1024))


def _malloc_trim() -> Any:
    # The process's own symbols: glibc's malloc_trim where glibc is the C library.
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)
    except OSError:
        return None


_MALLOC_TRIM = _malloc_trim()


def trim_memory() -> None:
    """Give freed heap back to the kernel (glibc's malloc_trim); nothing elsewhere."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
