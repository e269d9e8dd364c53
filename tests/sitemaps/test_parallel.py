"""A SQLite source shared with a worker process writes what one process alone would."""

from __future__ import annotations

import ctypes
import gzip
import multiprocessing
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.sitemaps import writer
from service.sitemaps.entries import _render_each, render
from service.sitemaps.errors import SitemapError
from service.sitemaps.sql_source import SqlRows
from service.sitemaps.writer import INDEX_NAME, Limits, write_sitemaps

BASE = "http://sitemaps.example.test/sitemaps"
QUERY = "SELECT loc, lastmod FROM pages ORDER BY id"
ROWS = 3_000


def make_db(path: Path, bad_at: int | None = None, wal: bool = False) -> str:
    with sqlite3.connect(path) as db:
        if wal:
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE pages (id INTEGER PRIMARY KEY, loc TEXT, lastmod TEXT)")
        db.executemany(
            "INSERT INTO pages (id, loc, lastmod) VALUES (?, ?, ?)",
            [
                (
                    i,
                    "relative/url" if i == bad_at else f"https://shop.example.test/p/{i}?a=1&b=2",
                    f"2026-11-{1 + i % 28:02d}T10:15:00+00:00",
                )
                for i in range(ROWS)
            ],
        )
    db.close()
    return f"sqlite:///{path}"


def contents(out: Path) -> dict[str, bytes]:
    return {path.name: gzip.decompress(path.read_bytes()) for path in sorted(out.glob("sitemap-*"))}


@pytest.fixture
def splits(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int]]:
    """Every split point chosen, as (position, count, split point)."""
    chosen: list[tuple[int, int, int]] = []
    real = writer._split_point

    def record(position: int, count: int, multiple: int) -> int:
        chosen.append((position, count, real(position, count, multiple)))
        return chosen[-1][2]

    monkeypatch.setattr(writer, "_split_point", record)
    return chosen


def slow_until_split(
    chosen: list[tuple[int, int, int]], reported: list[int] | None = None
) -> Callable[[int], None]:
    # Reading slowly until the worker has counted, so that it really gets rows.
    def progress(rows: int) -> None:
        if reported is not None:
            reported.append(rows)
        if not chosen:
            time.sleep(0.02)

    return progress


def test_split_output_equals_sequential_output(tmp_path, splits):
    url = make_db(tmp_path / "pages.db")
    limits = Limits(max_urls=50)
    source = SqlRows(url, QUERY, batch_size=10)
    alone = write_sitemaps(source, tmp_path / "alone", BASE, limits, parallel=False)
    assert not splits
    reported: list[int] = []
    shared = write_sitemaps(
        source, tmp_path / "shared", BASE, limits, on_progress=slow_until_split(splits, reported)
    )
    assert sum(reported) == ROWS  # the worker's rows are counted too
    [(position, count, stop)] = splits
    assert count == ROWS
    assert position <= stop < ROWS  # the worker wrote the rest
    assert stop % 50 == 0
    assert shared.urls == alone.urls == ROWS
    assert [(f.name, f.urls) for f in shared.files] == [(f.name, f.urls) for f in alone.files]
    assert contents(tmp_path / "shared") == contents(tmp_path / "alone")
    assert len(contents(tmp_path / "shared")) == ROWS // 50
    for file in shared.files[:-1]:
        with gzip.open(file.path) as unzipped:  # a valid gzip stream, as gzip.open reads it
            assert unzipped.read().startswith(b"<?xml")
        assert file.size == file.path.stat().st_size
    index = (tmp_path / "shared" / INDEX_NAME).read_text()
    assert index.count("<sitemap>") == ROWS // 50
    assert not list((tmp_path / "shared").glob("part-*"))


def test_split_with_a_byte_limit_is_still_complete(tmp_path, splits):
    url = make_db(tmp_path / "pages.db")
    limits = Limits(max_urls=50, max_bytes=3_000)
    source = SqlRows(f"{url}", f"{QUERY};", batch_size=10)
    shared = write_sitemaps(
        source, tmp_path / "shared", BASE, limits, on_progress=slow_until_split(splits)
    )
    assert splits
    locs = [
        line.split(b"<loc>")[1].split(b"</loc>")[0]
        for data in contents(tmp_path / "shared").values()
        for line in data.splitlines()
        if line.startswith(b"<url>")
    ]
    assert locs == [f"https://shop.example.test/p/{i}?a=1&amp;b=2".encode() for i in range(ROWS)]
    assert all(len(data) <= 3_000 for data in contents(tmp_path / "shared").values())
    assert shared.urls == ROWS


def test_an_error_in_either_process_is_one_sitemap_error(tmp_path, splits):
    url = make_db(tmp_path / "pages.db", bad_at=ROWS - 5)
    source = SqlRows(url, QUERY, batch_size=10)
    with pytest.raises(SitemapError, match="not an absolute"):
        write_sitemaps(
            source, tmp_path / "out", BASE, Limits(50), on_progress=slow_until_split(splits)
        )


@pytest.mark.parametrize("url", ["sqlite://", "wal"])
def test_unsafe_sources_are_not_split(tmp_path, url):
    if url == "wal":
        url = make_db(tmp_path / "pages.db", wal=True)
    with SqlRows(url, QUERY).split() as split:
        assert split is None


def test_bad_queries_fall_back_to_the_reader_that_reports_them(tmp_path):
    url = make_db(tmp_path / "pages.db")
    with SqlRows(url, "SELECT nope FROM nowhere").split() as split:
        assert split is None
    with pytest.raises(SitemapError, match="bad query"):
        write_sitemaps(SqlRows(url, "SELECT nope FROM nowhere"), tmp_path / "out", BASE)


@pytest.mark.parametrize("schemes", [("https",), ("http",), ("https", "http")])
def test_clean_batches_render_as_the_careful_path_does(schemes):
    rows = [
        (f"{schemes[i % len(schemes)]}://shop.example.test/p/{i}?a=1&b=%20", "2026-11-22")
        for i in range(100)
    ]
    fast = render(rows)
    assert fast.data == _render_each(rows).data
    with pytest.raises(SitemapError, match="not an absolute"):
        render([*rows, ("httpx://x.test/", "2026-11-22")])
    assert b"&amp;" in fast.data
    assert fast.text(3, 7) == b"".join(fast.data.splitlines(keepends=True)[3:7])
    assert fast.size(5) == len(fast.data.splitlines(keepends=True)[5])


class DyingTail:
    """A worker's share whose process dies without a word."""

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        os._exit(3)
        yield None


class LockedOut:
    """A worker's snapshot that cannot count, as when a waiting writer locks readers out."""

    def count(self) -> int:
        raise SitemapError("database error while counting: database is locked")

    def rows(self, offset: int) -> Iterator[list[tuple[str, str]]]:
        raise AssertionError("a worker that could not count must not read")


class LockedOutTail:
    @contextmanager
    def snapshot(self) -> Iterator[LockedOut]:
        yield LockedOut()


@dataclass
class SplitSource:
    rows: list[tuple[str, str]]
    tail: DyingTail | LockedOutTail

    def __iter__(self) -> Iterator[list[tuple[str, str]]]:
        yield self.rows

    @contextmanager
    def split(self) -> Iterator[tuple[Iterator[list[tuple[str, str]]], object]]:
        yield batched(self.rows), self.tail


def batched(rows: list[tuple[str, str]]) -> Iterator[list[tuple[str, str]]]:
    for start in range(0, len(rows), 50):
        time.sleep(0.05)  # slow enough for the worker to have answered
        yield rows[start : start + 50]


THOUSAND = [(f"https://a.example.test/{i}", "2026-01-02") for i in range(1_000)]


def test_a_worker_that_dies_is_reported_not_waited_for(tmp_path):
    with pytest.raises(SitemapError, match="worker process died"):
        write_sitemaps(SplitSource(THOUSAND, DyingTail()), tmp_path, BASE, Limits(max_urls=50))


def test_a_worker_that_cannot_count_leaves_all_rows_to_the_main_process(tmp_path):
    source = SplitSource(THOUSAND, LockedOutTail())
    generation = write_sitemaps(source, tmp_path, BASE, Limits(max_urls=50))
    assert generation.urls == len(THOUSAND)
    assert [f.name for f in generation.files[:-1]] == [
        f"sitemap-{n:05d}.xml.gz" for n in range(1, 21)
    ]


class CountingTail:
    """A worker's share that counts, and never gets as far as reading its rows."""

    @contextmanager
    def snapshot(self) -> Iterator[CountingTail]:
        yield self

    def count(self) -> int:
        return len(THOUSAND)

    def rows(self, offset: int) -> Iterator[list[tuple[str, str]]]:
        raise AssertionError("a worker whose main process has gone must not read")


@pytest.mark.parametrize("closed", ["before the count", "after the count, unread"])
def test_a_worker_whose_main_process_has_closed_its_end_ends_quietly(tmp_path, closed):
    """A stopping main process closes the channel; the worker, run here in this process so that
    anything it raises reaches the test, must end without a word: a traceback from a worker
    would follow the stop's one line."""
    main_end, worker_end = multiprocessing.Pipe()
    if closed == "before the count":
        main_end.close()
    else:
        threading.Timer(0.2, main_end.close).start()  # while the worker waits for its start
    writer._worker(CountingTail(), tmp_path, Limits(max_urls=50), ctypes.c_int64(0), worker_end, "")
    assert list(tmp_path.iterdir()) == []
