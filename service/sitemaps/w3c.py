"""Turn `lastmod` values into W3C datetime strings that are valid xsd:date or xsd:dateTime."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from functools import cache

from service.sitemaps.errors import SitemapError

_W3C = re.compile(
    r"(\d{4}-\d\d-\d\d)(?:T(\d\d):(\d\d)(?::(\d\d)(?:\.\d+)?)?(?:Z|[+-](\d\d):(\d\d)))?"
)
_DAYS = re.compile(r"^\d{4}-\d\d-\d\d", re.MULTILINE)
# Calendar days seen valid already: a source's lastmods share few distinct days.
_KNOWN_DAYS: set[str] = set()
_KNOWN_DAYS_MAX = 100_000
_DIGITS = b"0123456789"


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
        match = _W3C.fullmatch(value)
        if match:
            return _checked(value, match)
        try:
            return w3c(datetime.fromisoformat(value.strip()))
        except ValueError:
            pass
    raise SitemapError(f"lastmod {value!r} is not a date or datetime")


def _checked(value: str, match: re.Match[str]) -> str:
    day, hour, minute, second, zone_hour, zone_minute = match.groups()
    times = [(hour, 23), (minute, 59), (second, 59), (zone_hour, 14), (zone_minute, 59)]
    if not _real_day(day) or any(part and int(part) > top for part, top in times):
        raise SitemapError(f"lastmod {value!r} is not a real date and time")
    if hour and second is None:  # W3C allows hh:mm; xsd:dateTime wants the seconds too
        return f"{value[:16]}:00{value[16:]}"
    return value


def _real_day(day: str) -> bool:
    if day in _KNOWN_DAYS:
        return True
    try:
        date.fromisoformat(day)
    except ValueError:
        return False
    if len(_KNOWN_DAYS) >= _KNOWN_DAYS_MAX:
        _KNOWN_DAYS.clear()
    _KNOWN_DAYS.add(day)
    return True


def uniform_w3c(joined: str, count: int) -> bool:
    """Whether `count` values joined by newlines are valid W3C datetimes that all share one
    shape, with seconds wherever there is a time (else the careful path adds them)."""
    # A regex over millions of strings costs seconds; a DB column is usually one
    # fixed shape, so check it column by column with C-speed slices instead.
    width = joined.find("\n") if count > 1 else len(joined)
    first, stride = joined[:width], width + 1
    match = _W3C.fullmatch(first) if joined.isascii() else None
    if match is None or (match.group(2) and not match.group(4)):
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
    return _in_range(raw, stride, match) and all(map(_real_day, set(_DAYS.findall(joined))))


def _in_range(raw: bytes, stride: int, match: re.Match[str]) -> bool:
    """Every hour, minute, second and zone of the column at most its top value."""
    for group, top in ((2, 23), (3, 59), (4, 59), (5, 14), (6, 59)):
        start = match.start(group)
        if start < 0:
            continue
        tens, ones = raw[start::stride], raw[start + 1 :: stride]
        top_tens, top_ones = divmod(top, 10)
        if tens.translate(None, _DIGITS[: top_tens + 1]):
            return False  # a tens digit above the top's
        at_top = int.from_bytes(tens.translate(_flags(str(top_tens))), "big")
        over = int.from_bytes(ones.translate(_flags(_DIGITS[top_ones + 1 :].decode())), "big")
        if at_top & over:
            return False  # the top's tens digit with a larger ones digit
    return True


@cache
def _flags(chars: str) -> bytes:
    """A translation table that maps `chars` to 1 and every other byte to 0."""
    return bytes(1 if chr(byte) in chars else 0 for byte in range(256))
