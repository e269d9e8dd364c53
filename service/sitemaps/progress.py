"""Progress of long steps: a tqdm bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType

from tqdm import tqdm

log = logging.getLogger("service.sitemaps")


class Progress:
    """Counts units of one step and shows them the way stderr can display."""

    def __init__(self, step: str, unit: str, total: int | None = None, every: float = 5.0) -> None:
        self.step, self.unit, self.total, self.every = step, unit, total, every
        self.count = 0
        self._bar = (
            tqdm(total=total, desc=step, unit=unit, unit_scale=True)
            if sys.stderr.isatty()
            else None
        )
        self._last = time.monotonic()

    def update(self, amount: int = 1) -> None:
        self.count += amount
        if self._bar is not None:
            self._bar.update(amount)
        elif time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            log.info("%s: %s", self.step, self._figures())

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.close()
        if kind is None:
            log.info("%s: done, %s", self.step, self._figures())

    def _figures(self) -> str:
        of = f" of {self.total:,}" if self.total is not None else ""
        return f"{self.count:,}{of} {self.unit}s"
