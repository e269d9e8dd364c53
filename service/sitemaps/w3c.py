"""Turn `lastmod` values into W3C datetime strings that are valid xsd:date or xsd:dateTime."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from functools import cache

from service.sitemaps.errors import SitemapError

_W3C = re.compile(
    r"(\d{4}-\d\d-\d\d)(?:T(\d\d):(\d\d)(?::(\d\d)(?:\.\d+)?)?(?:Z|[+-](\d\d):(\d\d)))?"
)
# Calendar days seen valid already: a source's lastmods share few distinct days.
_KNOWN_DAYS: set[str] = set()
_KNOWN_DAYS_MAX = 100_000
_DIGITS = b"0123456789"
# The match groups of hour, minute, second, zone hour and zone minute, with their top values.
_TOPS = ((2, 23), (3, 59), (4, 59), (5, 14), (6, 59))


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
    # The tens digits of month, day, hour, minute, second and zone, by their top value.
    tens = {5: b"01", 8: b"0123"} | {
        match.start(group): _DIGITS[: top // 10 + 1]
        for group, top in _TOPS
        if match.start(group) >= 0
    }
    columns = [raw[position::stride] for position in range(width)]
    for position, (char, column) in enumerate(zip(first.encode("ascii"), columns, strict=True)):
        if 0x30 <= char <= 0x39:
            allowed = tens.get(position)
            if column.translate(None, allowed) if allowed else not column.isdigit():
                return False
        elif char in b"+-":
            if column.strip(b"+-"):
                return False
        elif column != bytes([char]) * count:
            return False
    return _real_days(columns) and _in_range(columns, match)


def _real_days(columns: list[bytes]) -> bool:
    """Every `YYYY-MM-DD` at the start of a line a day of the calendar (February 29th
    aside: a batch holding one goes the careful way, which knows the leap years).
    The tens digits are known to be 0-1 for the month and 0-3 for the day."""
    m0, m1 = _bits(columns[5], ("0", "1"))
    o0, o1, o2, o469, o3_9 = _bits(columns[6], ("0", "1", "2", "469", "3456789"))
    d0, d2, d3 = _bits(columns[8], ("0", "2", "3"))
    e0, e1, e9, e2_9 = _bits(columns[9], ("0", "1", "9", "23456789"))
    february = m0 & o2
    thirty_days = (m0 & o469) | (m1 & o1)
    wrong = (
        (m0 & o0)  # month 00
        | (m1 & o3_9)  # months 13-19
        | (d0 & e0)  # day 00
        | (d3 & e2_9)  # days 32-39
        | (february & d3)  # February 30th and 31st
        | (thirty_days & d3 & e1)  # the 31st of a 30-day month
        | (february & d2 & e9)  # February 29th
    )
    return not wrong


def _in_range(columns: list[bytes], match: re.Match[str]) -> bool:
    """No hour or zone hour above its top where the tens digit is the top's (23, 14)."""
    for group, top in _TOPS:
        start = match.start(group)
        top_tens, top_ones = divmod(top, 10)
        if start < 0 or top_ones == 9:
            continue
        (at_top,) = _bits(columns[start], (str(top_tens),))
        if at_top:
            (too_big,) = _bits(columns[start + 1], (_DIGITS.decode()[top_ones + 1 :],))
            if at_top & too_big:
                return False
    return True


def _bits(column: bytes, groups: tuple[str, ...]) -> list[int]:
    """For each group of characters, a bit field with a 1 in the byte of each row whose
    character is in the group: whole-column flags that combine with & and |."""
    flags = int.from_bytes(column.translate(_table(groups)), "big")
    ones = _ones(len(column))
    return [(flags >> bit) & ones for bit in range(len(groups))]


@cache
def _table(groups: tuple[str, ...]) -> bytes:
    """Translates each byte to the bits of the groups it belongs to."""
    return bytes(
        sum(1 << bit for bit, chars in enumerate(groups) if chr(byte) in chars)
        for byte in range(256)
    )


@cache
def _ones(count: int) -> int:
    return int.from_bytes(b"\x01" * count, "big")
