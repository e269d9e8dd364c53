"""Render batches of `(loc, lastmod)` rows into `<url>` entries, one ASCII line each."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from itertools import accumulate
from operator import itemgetter

from service.sitemaps.errors import RowError, SitemapError
from service.sitemaps.locs import check_lengths, escape_batch, is_clean
from service.sitemaps.w3c import uniform_w3c, w3c

Row = Sequence[object]


class Entries:
    """The rendered `<url>` lines of one batch, sliced by entry when a file fills up."""

    def __init__(self, data: bytes, count: int) -> None:
        self.data = data
        self.count = count

    def __len__(self) -> int:
        return self.count

    def text(self, start: int, stop: int) -> bytes:
        """The `<url>` elements of entries `start:stop`, one per line."""
        if start == 0 and stop == self.count:
            return self.data
        ends = self._ends
        return self.data[ends[start - 1] if start else 0 : ends[stop - 1] if stop else 0]

    def size(self, index: int) -> int:
        """The length in bytes of entry `index`."""
        ends = self._ends
        return ends[index] - (ends[index - 1] if index else 0)

    @cached_property
    def _ends(self) -> list[int]:
        # Only needed where a file boundary falls inside a batch.
        return list(accumulate(len(line) + 1 for line in self.data[:-1].split(b"\n")))


def render(rows: Sequence[Row]) -> Entries:
    """The entries of one batch: locs normalized and XML-escaped, lastmods in W3C form."""
    if not rows:
        return Entries(b"", 0)
    return _render_clean(rows) or _render_each(rows)


def _render_clean(rows: Sequence[Row]) -> Entries | None:
    """The whole batch with a few C-level passes, or None unless every row is already clean.

    Clean rows are pairs of str: a loc that `is_clean`, and lastmods of one W3C shape.
    """
    try:
        loc_list = list(map(itemgetter(0), rows))
        locs = "\n".join(loc_list)  # TypeError unless all are str
        days = "\n".join(map(itemgetter(1), rows))
        if not (is_clean(locs, len(rows)) and uniform_w3c(days, len(rows))):
            return None
        check_lengths(loc_list, locs)
        text = "".join(
            [f"<url><loc>{loc}</loc><lastmod>{day}</lastmod></url>\n" for loc, day in rows]
        )
    except (TypeError, ValueError, IndexError):
        return None  # wrong row shapes: the careful path says so
    data = text.encode("ascii")
    # `&` is the only XML special character a clean loc can hold, and tags have none.
    return Entries(data.replace(b"&", b"&amp;") if "&" in locs else data, len(rows))


def _render_each(rows: Sequence[Row]) -> Entries:
    wrong = next((index for index, row in enumerate(rows) if len(row) != 2), None)
    if wrong is not None:
        raise RowError("every row must be (loc, lastmod)", wrong)
    locs = escape_batch([row[0] for row in rows])
    days = [_lastmod(index, row[1]) for index, row in enumerate(rows)]
    text = "".join(
        [
            f"<url><loc>{loc}</loc></url>\n"
            if day is None
            else f"<url><loc>{loc}</loc><lastmod>{day}</lastmod></url>\n"
            for loc, day in zip(locs, days, strict=True)
        ]
    )
    return Entries(text.encode("ascii"), len(rows))


def _lastmod(row: int, value: object) -> str | None:
    try:
        return w3c(value)
    except SitemapError as error:
        raise RowError(str(error), row) from None
