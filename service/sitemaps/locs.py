"""Make `loc` values valid, ASCII-only, XML-escaped sitemap URLs, a batch at a time."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote, urlsplit

from service.sitemaps.errors import RowError, SitemapError

_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Printable ASCII stays as it is (XML escaping handles & < > ' "); only
# non-ASCII, spaces, controls and stray percent signs need percent-encoding.
_KEEP = "".join(chr(code) for code in range(0x21, 0x7F))
_NOT_IN_CLEAN = bytes([*range(0x21), 0x7F]) + b"<>'\""
_STRAY_PERCENT_BYTES = re.compile(rb"%(?![0-9A-Fa-f]{2})")
# tLoc of the sitemaps.org schemas.
MIN_LENGTH, MAX_LENGTH = 12, 2048
_XML = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("'", "&apos;"), ('"', "&quot;"))


def normalize(loc: object) -> str:
    """One URL as an absolute http(s) URL in ASCII: IDN hosts in punycode, the rest percent-encoded."""
    if not isinstance(loc, str):
        raise SitemapError(f"loc {loc!r} is not a string")
    parts = urlsplit(loc.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SitemapError(f"loc {loc!r} is not an absolute http(s) URL")
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise SitemapError(f"loc {loc!r} has an invalid host name") from None
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    rest = loc.strip()[len(parts.scheme) + 3 + len(parts.netloc) :]
    rest = _STRAY_PERCENT.sub("%25", rest)
    return f"{parts.scheme}://{netloc}{quote(rest, safe=_KEEP)}"


def xml_escape(text: str) -> str:
    """Text with the five XML special characters replaced by entities."""
    for char, entity in _XML:
        if char in text:
            text = text.replace(char, entity)
    return text


def escape_batch(locs: Sequence[object]) -> list[str]:
    """Every loc normalized and XML-escaped; whole-batch string operations when already clean."""
    try:
        joined = "\n".join(locs)  # type: ignore[arg-type]
    except TypeError:
        joined = ""
    if not is_clean(joined, len(locs)):
        joined = "\n".join([_normalized(row, loc) for row, loc in enumerate(locs)])
    check_lengths(joined.split("\n"), joined)
    return xml_escape(joined).split("\n")


def _normalized(row: int, loc: object) -> str:
    try:
        return normalize(loc)
    except SitemapError as error:
        raise RowError(str(error), row) from None


def check_lengths(locs: Sequence[str], joined: str) -> None:
    """Refuse a loc the schemas' tLoc refuses: under 12 or over 2,048 characters.

    `joined` is the locs joined by newlines: while each aligned piece of it half the
    maximum long holds a newline, no line can be longer than the maximum, and the
    per-loc check of the longest (a pass over every loc) is skipped.
    """
    half = (MAX_LENGTH + 1) // 2 + 1
    short = bool(locs) and min(map(len, locs)) < MIN_LENGTH
    maybe_long = any(
        joined.find("\n", start, start + half) < 0
        for start in range(0, len(joined) - half + 1, half)
    )
    if short or (maybe_long and max(map(len, locs)) > MAX_LENGTH):
        row, loc = next(
            (row, loc) for row, loc in enumerate(locs) if not MIN_LENGTH <= len(loc) <= MAX_LENGTH
        )
        shown = loc if len(loc) <= 80 else f"{loc[:60]}…"
        raise RowError(
            f"loc {shown!r} has {len(loc):,} characters; sitemaps allow 12 to 2,048", row
        )


def is_clean(joined: str, count: int) -> bool:
    """Whether `count` locs joined by newlines are printable ASCII http(s) URLs needing no change.

    Clean locs need no percent-encoding, and `&` is the only XML special character
    in them, so escaping is one replace over rendered text.
    """
    # A few C-level passes over the joined batch cost far less than parsing
    # millions of URLs one by one; bytes methods skip the Unicode tables.
    if count == 0 or not joined.isascii():
        return False
    raw = joined.encode("ascii")
    # The count-1 newlines must be the only controls, spaces and <>'" characters.
    separators_only = len(raw) - len(raw.translate(None, _NOT_IN_CLEAN)) == count - 1
    return (
        separators_only
        and raw.startswith((b"http://", b"https://"))
        and _all_lines_http(raw, count - 1)
        and (b"%" not in raw or not _STRAY_PERCENT_BYTES.search(raw))
    )


def _all_lines_http(raw: bytes, lines: int) -> bool:
    # Whether every line after the first starts with a scheme; one pass when all are https.
    https = raw.count(b"\nhttps://")
    return https == lines or https + raw.count(b"\nhttp://") == lines
