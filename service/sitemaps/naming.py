"""Names of generation buckets: `sitemaps-<UTC timestamp>-<microseconds>-<random>`, sortable by age."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

PREFIX = "sitemaps-"
_GENERATION = re.compile(r"sitemaps-\d{8}t\d{6}z(?:-\d{6}-[0-9a-f]{2})?")


def new_bucket_name(now: datetime | None = None) -> str:
    """A fresh generation name; microseconds order runs within a second, the random tail breaks ties."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{PREFIX}{moment:%Y%m%dt%H%M%Sz}-{moment.microsecond:06d}-{secrets.token_hex(1)}"


def is_generation(name: str | None) -> bool:
    """Whether a bucket name (or the Ingress's live label) names one of our generations."""
    return name is not None and _GENERATION.fullmatch(name) is not None
