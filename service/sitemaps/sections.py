"""Named sections: one family of sitemap files per query, from `--section` or SITEMAP_SECTIONS."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from service.settings import SitemapSettings, env_name
from service.sitemaps.errors import SitemapError

if TYPE_CHECKING:
    from service.sitemaps.entries import Row

# Safe in an object name, a URL path and a file name, and short enough to read in an index.
NAME_RULE = "1-40 characters of a-z, 0-9 and '-', starting with a letter or digit"
NAME_PATTERN = r"[a-z0-9][a-z0-9-]{0,39}"
_NAME = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class Section:
    """The rows of one section; its files are `sitemap-<name>-00001.xml.gz`, … (an empty
    name, as for the bucket source or a single `--query`, gives `sitemap-00001.xml.gz`, …)."""

    name: str
    batches: Iterable[Sequence[Row]]

    @property
    def prefix(self) -> str:
        """What each of the section's file names starts with."""
        return f"sitemap-{self.name}-" if self.name else "sitemap-"


@dataclass(frozen=True)
class Query:
    """A section of a SQL source before it is connected: its name and its query."""

    name: str
    query: str


def check_name(name: str, where: str) -> str:
    """The name, if it follows the rule; else a one-line error naming `where` it came from."""
    if not _NAME.fullmatch(name):
        raise SitemapError(f"bad section name {name!r} in {where}: use {NAME_RULE}")
    return name


def from_options(values: Sequence[str]) -> list[Query]:
    """`--section NAME=QUERY` values, in the order given."""
    queries = []
    for value in values:
        name, equals, query = value.partition("=")
        if not equals or not query.strip():
            raise SitemapError(f"bad option --section {value!r}: expected NAME=QUERY")
        queries.append(Query(check_name(name.strip(), "--section"), query.strip()))
    return _unique(queries, "--section")


def to_json(queries: Iterable[Query]) -> str:
    """The sections as the job's environment carries them; `from_json` reads it back."""
    return json.dumps([{"name": query.name, "query": query.query} for query in queries])


def from_json(text: str) -> list[Query]:
    """The sections variable: a JSON array of `{"name": "...", "query": "..."}` objects."""
    where = env_name(SitemapSettings, "sections")
    try:
        document = json.loads(text)
    except ValueError as error:
        raise SitemapError(f"bad {where}: not JSON ({error})") from None
    if not isinstance(document, list) or not document:
        raise SitemapError(f'bad {where}: expected a non-empty array of {{"name", "query"}}')
    queries = []
    for number, item in enumerate(document, start=1):
        if not isinstance(item, dict):
            raise SitemapError(f"bad {where}: item {number} is not an object")
        unknown = sorted(set(item) - {"name", "query"})
        if unknown:
            raise SitemapError(f"bad {where}: item {number} has unknown keys {unknown}")
        name, query = item.get("name"), item.get("query")
        if not isinstance(name, str) or not name:
            raise SitemapError(f"bad {where}: item {number} has no name")
        if not isinstance(query, str) or not query.strip():
            raise SitemapError(f"bad {where}: item {number} ({name!r}) has no query")
        queries.append(Query(check_name(name, where), query.strip()))
    return _unique(queries, where)


def _unique(queries: list[Query], where: str) -> list[Query]:
    seen: set[str] = set()
    for query in queries:
        if query.name in seen:
            raise SitemapError(f"bad {where}: section {query.name!r} appears twice")
        seen.add(query.name)
    return queries
