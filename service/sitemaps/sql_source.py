"""Stream `(loc, lastmod)` rows from any SQLAlchemy database with a server-side cursor."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from sqlalchemy import create_engine, exc
from sqlalchemy.engine import URL, Engine, make_url

from service.sitemaps.errors import SitemapError

DEFAULT_DATABASE_URL = "sqlite:///sitemaps.db"
BATCH_SIZE = 10_000


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


def sql_batches(
    database_url: str, query: str, batch_size: int = BATCH_SIZE
) -> Iterator[Sequence[Sequence[object]]]:
    """Batches of rows from `query`, which must return `(loc, lastmod)`."""
    engine, url = _engine(database_url)
    where = url.render_as_string(hide_password=True)
    try:
        try:
            connection = engine.connect()
        except exc.DBAPIError as error:
            raise SitemapError(f"database unreachable: {where}: {_one_line(error)}") from None
        with connection:
            options = connection.execution_options(stream_results=True, yield_per=batch_size)
            try:
                result = options.exec_driver_sql(query)
            except exc.DBAPIError as error:
                raise SitemapError(f"bad query: {_one_line(error)}") from None
            if not result.returns_rows or len(result.keys()) != 2:
                raise SitemapError("bad query: it must return two columns, (loc, lastmod)")
            # Row objects cost more than the read itself, so rows come straight from
            # the DBAPI cursor; SQLAlchemy's streaming strategy pre-buffers at most
            # the first row, which the Result hands over first.
            first = result.fetchmany(1)
            if not first:
                return
            yield [tuple(first[0])]
            cursor = result.cursor
            try:
                while rows := cursor.fetchmany(batch_size):
                    yield rows
            except engine.dialect.loaded_dbapi.Error as error:
                raise SitemapError(f"database error while reading: {_one_line(error)}") from None
            result.close()
    finally:
        engine.dispose()
