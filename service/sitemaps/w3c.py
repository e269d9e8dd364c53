"""Turn `lastmod` values into W3C datetime strings, a batch at a time."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import cast

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


def w3c_batch(values: Sequence[object]) -> tuple[list[str | None], bool]:
    """Every value as a W3C datetime, and whether none is missing; fast for uniform W3C strings."""
    try:
        joined = "\n".join(values)  # type: ignore[arg-type]
    except TypeError:
        joined = ""
    if joined and _uniform_w3c(joined, cast("Sequence[str]", values)):
        return list(cast("Sequence[str]", values)), True
    dates = [w3c(value) for value in values]
    return dates, None not in dates


def _uniform_w3c(joined: str, values: Sequence[str]) -> bool:
    # A regex over millions of strings costs seconds; a DB column is usually one
    # fixed shape, so check it column by column with C-speed slices instead.
    first = values[0]
    width, count, stride = len(first), len(values), len(first) + 1
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
