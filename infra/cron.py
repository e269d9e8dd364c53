"""The schedules and time zones that a Kubernetes CronJob accepts, as stack config kinds.

Kubernetes parses schedules with robfig/cron (ParseStandard): day of week is 0-6 and the
macros are matched exactly, in lower case; month and day names are case-insensitive.
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Annotated

from service.fields import Check, Text, checked

MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# name, lowest, highest, names mapped onto lowest, lowest+1, ...
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)
_ITEM = re.compile(r"^(?P<range>\*|\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/(?P<step>[0-9]+))?$")


class CronError(ValueError):
    """A schedule is not a valid five-field cron expression."""


def _value(text: str, field: tuple[str, int, int, tuple[str, ...]]) -> int:
    name, low, high, names = field
    if text.isdigit():
        number = int(text)
    elif text.lower() in names:
        number = low + names.index(text.lower())
    else:
        raise CronError(
            f"{name} has {text!r}; allowed: numbers {low}-{high}"
            + (f" or names {names[0]}-{names[-1]}" if names else "")
        )
    if not low <= number <= high:
        raise CronError(f"{name} value {number} is outside {low}-{high}")
    return number


def _check_field(text: str, field: tuple[str, int, int, tuple[str, ...]]) -> None:
    name = field[0]
    for item in text.split(","):
        match = _ITEM.match(item)
        if match is None:
            raise CronError(f"{name} has {item!r}; use *, a value, a range a-b, lists and /steps")
        part = match.group("range")
        if part == "?" and name not in ("day of month", "day of week"):
            raise CronError(f"{name} cannot be '?'")
        if part not in ("*", "?"):
            bounds = [_value(value, field) for value in part.split("-")]
            if len(bounds) == 2 and bounds[0] > bounds[1]:
                raise CronError(f"{name} range {part} runs backwards")
        step = match.group("step")
        if step is not None and int(step) == 0:
            raise CronError(f"{name} step must be at least 1")


def validate_schedule(schedule: str) -> None:
    """Raise CronError unless `schedule` is a five-field cron expression or a macro like @daily."""
    text = schedule.strip()
    if text.startswith("@"):
        if text not in MACROS:
            raise CronError(f"unknown macro {text}; allowed (lower case): {', '.join(MACROS)}")
        return
    if text.upper().startswith(("TZ=", "CRON_TZ=")):
        raise CronError("set the time zone in sitemaps.timeZone (the CronJob's timeZone field)")
    fields = text.split()
    if len(fields) != len(_FIELDS):
        raise CronError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), not {len(fields)}"
        )
    for value, field in zip(fields, _FIELDS, strict=True):
        _check_field(value, field)


def _schedule(schedule: str) -> str:
    try:
        validate_schedule(schedule)
    except CronError as error:
        raise ValueError(f"is not a cron schedule: {error}") from None
    return schedule


def _is_time_zone(name: str) -> bool:
    zones = zoneinfo.available_timezones()
    # Without a tz database on this machine, the name's form is all that can be checked.
    return (
        name in zones if zones else re.fullmatch(r"[\w+-]+(/[\w+-]+)*", name, re.ASCII) is not None
    )


Schedule = Annotated[
    Text, Check(_schedule, "five fields (minute hour day-of-month month day-of-week), or @daily…")
]
TimeZone = Annotated[
    Text, checked(_is_time_zone, "must be a tz database name such as Europe/Berlin")
]
