"""Stream `(loc, lastmod)` rows from a SQL database with a server-side cursor.

A plain SQLite file is read with the standard library's sqlite3; every other URL goes
through SQLAlchemy, imported only then (it costs ~0.5 s of CPU to import).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from service.sitemaps.errors import SitemapError
from service.sitemaps.sqlite_reader import SqliteQuery

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine

DEFAULT_DATABASE_URL = "sqlite:///sitemaps.db"
# Rows per fetch: a network round trip each on a server, so many; on SQLite, few enough
# that a batch's rows and rendered text stay in a core's cache (~6% less CPU than 10,000).
# Both divide the 50,000-URL file limit, so files end between batches.
BATCH_SIZE = 10_000
SQLITE_BATCH_SIZE = 2_000
CONNECT_TIMEOUT_SECONDS = 10
# SQLAlchemy maps these to psycopg2, which is not installed; psycopg (3) is.
_POSTGRES_SCHEMES = ("postgresql", "postgres")
_SQLITE_SCHEMES = ("sqlite:///", "sqlite+pysqlite:///")

Rows = Sequence[Sequence[object]]


def _one_line(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    return " ".join(str(original).split())


def sqlite_file(database_url: str) -> Path | None:
    """The file of a plain `sqlite:///<path>` URL (no query options), else None."""
    scheme = next((s for s in _SQLITE_SCHEMES if database_url.startswith(s)), None)
    if scheme is None or "?" in database_url:
        return None
    database = database_url[len(scheme) :]
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(os.path.abspath(database))


def _existing(path: Path) -> Path:
    # SQLite would silently create a missing file and then report "no such table".
    if not path.is_file():
        raise SitemapError(f"database unreachable: no SQLite file at {path}")
    return path


def _sqlite_query(path: Path, query: str, batch_size: int) -> SqliteQuery:
    # The arguments SQLAlchemy's pysqlite dialect would pass for this URL.
    return SqliteQuery((str(path),), {"check_same_thread": False}, query, batch_size)


def _engine(database_url: str) -> tuple[Engine, URL]:
    from sqlalchemy import create_engine, exc
    from sqlalchemy.engine import make_url

    try:
        url = make_url(database_url)
        connect_args: dict[str, object] = {}
        if url.drivername in _POSTGRES_SCHEMES:
            url = url.set(drivername="postgresql+psycopg")
        if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
        engine = create_engine(url, connect_args=connect_args)
    except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as error:
        raise SitemapError(f"bad --database-url: {_one_line(error)}") from None
    database = url.database or ""
    is_file = url.get_backend_name() == "sqlite" and database not in ("", ":memory:")
    if is_file and not database.startswith("file:"):
        _existing(Path(database))
    return engine, url


@dataclass(frozen=True)
class SqlRows:
    """Batches of `(loc, lastmod)` rows from `query`, streamed with a server-side cursor."""

    database_url: str
    query: str
    batch_size: int | None = None  # by default, BATCH_SIZE or SQLITE_BATCH_SIZE

    def __iter__(self) -> Iterator[Rows]:
        path = sqlite_file(self.database_url)
        if path is not None:
            yield from _sqlite_stream(_existing(path), self.query, self._size(True))
            return
        from sqlalchemy import exc

        engine, url = _engine(self.database_url)
        where = url.render_as_string(hide_password=True)
        batch_size = self._size(url.get_backend_name() == "sqlite")
        try:
            try:
                connection = engine.connect()
            except exc.DBAPIError as error:
                raise SitemapError(_connect_failure(where, error)) from None
            with connection:
                yield from _stream(engine, connection, self.query, batch_size)
        finally:
            engine.dispose()

    @contextmanager
    def split(self) -> Iterator[tuple[Iterator[Rows], SqliteQuery] | None]:
        """The rows from the start, read in this process, and the query for a worker process
        to read the rest of the same snapshot from an offset; None where that is not safe.

        Only plain SQLite database files outside WAL mode qualify (see `SqliteQuery`). Any
        error here gives None too, and the streaming reader then reports it.
        """
        path = sqlite_file(self.database_url)
        if path is None or not path.is_file():
            yield None
            return
        query = _sqlite_query(path, self.query, self._size(True))
        with ExitStack() as stack:
            try:
                reader = stack.enter_context(query.snapshot())
                safe = reader.shareable() and reader.columns() == 2
            except sqlite3.Error:
                safe = False
            yield (reader.rows(), query) if safe else None

    def _size(self, sqlite: bool) -> int:
        if self.batch_size is not None:
            return self.batch_size
        return SQLITE_BATCH_SIZE if sqlite else BATCH_SIZE


def sql_batches(database_url: str, query: str, batch_size: int | None = None) -> SqlRows:
    """Batches of rows from `query`, which must return `(loc, lastmod)`."""
    return SqlRows(database_url, query, batch_size)


def _connect_failure(where: str, error: BaseException) -> str:
    reason = _one_line(error)
    if "authentication failed" in reason or "no password supplied" in reason:
        return f"database refused the login: {where}: {reason}"
    return f"database unreachable: {where}: {reason}"


def _sqlite_stream(path: Path, query: str, batch_size: int) -> Iterator[Rows]:
    try:
        connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    except sqlite3.Error as error:
        raise SitemapError(f"database unreachable: sqlite:///{path}: {error}") from None
    try:
        try:
            cursor = connection.execute(query)
        except (sqlite3.OperationalError, sqlite3.ProgrammingError, sqlite3.Warning) as error:
            raise SitemapError(f"bad query: {_one_line(error)}") from None
        except sqlite3.Error as error:  # "file is not a database", …
            raise SitemapError(f"database unreachable: sqlite:///{path}: {error}") from None
        if len(cursor.description or ()) != 2:
            raise SitemapError("bad query: it must return two columns, (loc, lastmod)")
        try:
            while rows := cursor.fetchmany(batch_size):
                yield rows
        except sqlite3.Error as error:
            raise SitemapError(f"database error while reading: {_one_line(error)}") from None
    finally:
        connection.close()


def _stream(engine: Engine, connection: Connection, query: str, batch_size: int) -> Iterator[Rows]:
    from sqlalchemy import exc

    options = connection.execution_options(stream_results=True, yield_per=batch_size)
    if engine.dialect.paramstyle in ("format", "pyformat"):
        # The driver formats the statement even without parameters: a literal `%`
        # (LIKE 'a%', n % 97) must be doubled, or it reads as a placeholder.
        query = query.replace("%", "%%")
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
        rows: Rows = [*first, *cursor.fetchmany(batch_size - 1)]
        while rows:
            yield rows
            rows = cursor.fetchmany(batch_size)
    except engine.dialect.loaded_dbapi.Error as error:
        raise SitemapError(f"database error while reading: {_one_line(error)}") from None
    result.close()
