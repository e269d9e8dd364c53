"""Decide which generation buckets to delete, never the live one or a newer one."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from service.sitemaps.naming import is_generation


def retained(
    buckets: Iterable[str], live: str | None, went_live: Collection[str], retain: int
) -> list[str]:
    """Generations older than the live one that went live, newest first, at most `retain`."""
    if not is_generation(live):
        return []
    older = sorted(
        (name for name in buckets if is_generation(name) and name < str(live)), reverse=True
    )
    return [name for name in older if name in went_live][:retain]


def doomed(
    buckets: Iterable[str], live: str | None, went_live: Collection[str], retain: int
) -> list[str]:
    """Generations to delete: older than live and not retained (orphans included).

    Buckets newer than the live one are never touched: they may belong to a run
    still in progress, and a crashed one is older than the next run's and goes then.
    """
    if not is_generation(live):
        return []
    names = list(buckets)
    keep = set(retained(names, live, went_live, retain))
    return sorted(
        name for name in names if is_generation(name) and name < str(live) and name not in keep
    )
