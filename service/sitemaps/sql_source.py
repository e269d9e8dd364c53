"""Stream `(loc, lastmod)` rows from any SQLAlchemy database with a server-side cursor."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, exc
from sqlalchemy.engine import URL, Connection, Engine, make_url

from service.sitemaps.errors import SitemapError
from service.sitemaps.sqlite_reader import SqliteQuery

DEFAULT_DATABASE_URL = "sqlite:///sitemaps.db"
# Rows per fetch: a network round trip each on a server, so many; on SQLite, few enough
# that a batch's rows and rendered text stay in a core's cache (~6% less CPU than 10,000).
# Both divide the 50,000-URL file limit, so files end between batches.
BATCH_SIZE = 10_000
SQLITE_BATCH_SIZE = 2_000


def _one_line(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    return " ".join(str(original).split())


def _engine(database_url: str) -> tuple[Engine, URL]:
    try:
        url = make_url(database_url)
        engine = create_engine(url)
    except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as error:
        raise SitemapError(f"bad --database-url: {_one_line(error)}") from None
    database = url.database or ""
    is_file = url.get_backend_name() == "sqlite" and database not in ("", ":memory:")
    # SQLite would silently create a missing file and then report "no such table".
    if is_file and not database.startswith("file:") and not Path(database).is_file():
        raise SitemapError(f"database unreachable: no SQLite file at {database}")
    return engine, url


@dataclass(frozen=True)
class SqlRows:
    """Batches of `(loc, lastmod)` rows from `query`, streamed with a server-side cursor."""

    database_url: str
    query: str
    batch_size: int | None = None  # by default, BATCH_SIZE or SQLITE_BATCH_SIZE

    def __iter__(self) -> Iterator[Sequence[Sequence[object]]]:
        engine, url = _engine(self.database_url)
        where = url.render_as_string(hide_password=True)
        batch_size = self._batch_size(url)
        try:
            try:
                connection = engine.connect()
            except exc.DBAPIError as error:
                raise SitemapError(f"database unreachable: {where}: {_one_line(error)}") from None
            with connection:
                yield from _stream(engine, connection, self.query, batch_size)
        finally:
            engine.dispose()

    @contextmanager
    def split(self) -> Iterator[tuple[Iterator[Sequence[Sequence[object]]], SqliteQuery] | None]:
        """The rows from the start, read in this process, and the query for a worker process
        to read the rest of the same snapshot from an offset; None where that is not safe.

        Only SQLite database files outside WAL mode qualify (see `SqliteQuery`). Any
        error here gives None too, and the streaming reader then reports it.
        """
        engine, url = _engine(self.database_url)
        engine.dispose()  # only its dialect is needed
        database = url.database or ""
        if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
            yield None
            return
        args, kwargs = engine.dialect.create_connect_args(url)
        query = SqliteQuery(tuple(args), dict(kwargs), self.query, self._batch_size(url))
        with ExitStack() as stack:
            try:
                reader = stack.enter_context(query.snapshot())
                safe = reader.shareable() and reader.columns() == 2
            except sqlite3.Error:
                safe = False
            yield (reader.rows(), query) if safe else None

    def _batch_size(self, url: URL) -> int:
        if self.batch_size is not None:
            return self.batch_size
        return SQLITE_BATCH_SIZE if url.get_backend_name() == "sqlite" else BATCH_SIZE


def sql_batches(database_url: str, query: str, batch_size: int | None = None) -> SqlRows:
    """Batches of rows from `query`, which must return `(loc, lastmod)`."""
    return SqlRows(database_url, query, batch_size)


def _stream(
    engine: Engine, connection: Connection, query: str, batch_size: int
) -> Iterator[Sequence[Sequence[object]]]:
    options = connection.execution_options(stream_results=True, yield_per=batch_size)
    try:
        result = options.exec_driver_sql(query)
    except exc.DBAPIError as error:
        raise SitemapError(f"bad query: {_one_line(error)}") from None
    if not result.returns_rows or len(result.keys()) != 2:
        raise SitemapError("bad query: it must return two columns, (loc, lastmod)")
    # Row objects cost more than the read itself, so rows come straight from
    # the DBAPI cursor; SQLAlchemy's streaming strategy pre-buffers at most
    # the first row, which the Result hands over first. The first batch is
    # full too, so that file boundaries fall between batches.
    first = [tuple(row) for row in result.fetchmany(1)]
    if not first:
        return
    cursor = result.cursor
    try:
        rows: Sequence[Sequence[object]] = [*first, *cursor.fetchmany(batch_size - 1)]
        while rows:
            yield rows
            rows = cursor.fetchmany(batch_size)
    except engine.dialect.loaded_dbapi.Error as error:
        raise SitemapError(f"database error while reading: {_one_line(error)}") from None
    result.close()
