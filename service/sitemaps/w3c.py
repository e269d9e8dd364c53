"""Turn `lastmod` values into W3C datetime strings, a batch at a time."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from service.sitemaps.errors import SitemapError

_W3C = re.compile(r"\d{4}-\d\d-\d\d(?:T\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:\d\d))?")


def w3c(value: object) -> str | None:
    """One value as a W3C datetime, or None when there is no lastmod."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        if _W3C.fullmatch(value):
            return value
        try:
            return w3c(datetime.fromisoformat(value.strip()))
        except ValueError:
            pass
    raise SitemapError(f"lastmod {value!r} is not a date or datetime")


def uniform_w3c(joined: str, count: int) -> bool:
    """Whether `count` values joined by newlines are W3C datetimes that all share one shape."""
    # A regex over millions of strings costs seconds; a DB column is usually one
    # fixed shape, so check it column by column with C-speed slices instead.
    width = joined.find("\n") if count > 1 else len(joined)
    first, stride = joined[:width], width + 1
    if not (joined.isascii() and _W3C.fullmatch(first)):
        return False
    raw = joined.encode("ascii")
    if len(raw) != count * stride - 1 or raw[width::stride] != b"\n" * (count - 1):
        return False
    for position, char in enumerate(first.encode("ascii")):
        column = raw[position::stride]
        if 0x30 <= char <= 0x39:
            if not column.isdigit():
                return False
        elif char in b"+-":
            if column.strip(b"+-"):
                return False
        elif column != bytes([char]) * count:
            return False
    return True
