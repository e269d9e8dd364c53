"""Read one SQLite query from several processes, each at its own offset of one snapshot.

This module stays free of SQLAlchemy so that worker processes start quickly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from service.sitemaps.errors import SitemapError


@dataclass(frozen=True)
class SqliteQuery:
    """The job's query on a SQLite file, connected with the arguments SQLAlchemy would use.

    A window `OFFSET n` over a query without a total order is only well defined because
    SQLite runs the same plan over the same data the same way every time; PostgreSQL,
    for one, makes no such promise, so only SQLite is read this way.
    """

    connect_args: tuple[object, ...]
    connect_kwargs: dict[str, object]
    query: str
    batch_size: int

    @contextmanager
    def snapshot(self) -> Iterator[SqliteReader]:
        """A connection inside a read transaction, which holds writers off until it ends.

        Two connections only see the same rows if one of them has held its read lock
        since before the other began; in WAL mode writers are not held off at all, so
        `SqliteReader.shareable` is false there.
        """
        kwargs = {**self.connect_kwargs, "isolation_level": None}
        connection = sqlite3.connect(*self.connect_args, **kwargs)  # type: ignore[call-overload]
        try:
            connection.execute("BEGIN")
            yield SqliteReader(self, connection)
        finally:
            connection.close()


@dataclass(frozen=True)
class SqliteReader:
    """The query's rows, or their number, on one connection."""

    query: SqliteQuery
    connection: sqlite3.Connection

    def shareable(self) -> bool:
        """Whether other connections are held to this one's snapshot (not in WAL mode)."""
        (mode,) = self.connection.execute("PRAGMA journal_mode").fetchone()
        return str(mode).lower() != "wal"

    def columns(self) -> int:
        """How many columns the query returns."""
        return len(self.connection.execute(self._sql(), (0, 0)).description or ())

    def count(self) -> int:
        """How many rows the query returns."""
        try:
            (count,) = self.connection.execute(
                f"SELECT count(*) FROM ({self._inner()})"  # noqa: S608 - the job's own query
            ).fetchone()
        except sqlite3.Error as error:
            raise SitemapError(f"database error while counting: {error}") from None
        return int(count)

    def rows(self, offset: int = 0) -> Iterator[Sequence[Sequence[object]]]:
        """Batches of the rows from `offset` on."""
        try:
            cursor = self.connection.execute(self._sql(), (-1, offset))
            while rows := cursor.fetchmany(self.query.batch_size):
                yield rows
        except sqlite3.Error as error:
            raise SitemapError(f"database error while reading: {error}") from None

    def _inner(self) -> str:
        # A subquery: without a final `;`, and safe from a trailing `--` comment.
        return f"\n{self.query.query.strip().rstrip(';')}\n"

    def _sql(self) -> str:
        return f"SELECT * FROM ({self._inner()}) LIMIT ? OFFSET ?"  # noqa: S608 - the job's own query
