"""Stream rendered entries into gzip sitemap files and a sitemap index."""

from __future__ import annotations

import contextlib
import gzip
import queue
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from service.sitemaps.entries import Entries, Row, render
from service.sitemaps.errors import SitemapError
from service.sitemaps.locs import escape_batch

URLSET_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
)
URLSET_TAIL = "</urlset>\n"
INDEX_NAME = "sitemap.xml"
MAX_INDEX_ENTRIES = 50_000
# Level 1: the XML is so repetitive that level 1 already compresses ~9x, while
# level 6 costs 2-3x the CPU for ~15% smaller files; compression runs beside
# the reader and must not become the slowest stage.
GZIP_LEVEL = 1
_QUEUE_DEPTH = 4


@dataclass(frozen=True)
class Limits:
    """When a sitemap file is full (the protocol's limits by default)."""

    max_urls: int = 50_000
    max_bytes: int = 50 * 1024 * 1024


@dataclass(frozen=True)
class SitemapFile:
    """One written file: its object name, local path, size on disk and URL count."""

    name: str
    path: Path
    size: int
    urls: int
    content_type: str


@dataclass(frozen=True)
class Generation:
    """Every file of one generation; the index comes last."""

    files: tuple[SitemapFile, ...]
    urls: int

    @property
    def index(self) -> SitemapFile:
        return self.files[-1]


class _OpenFile:
    """A sitemap file being written; a worker thread gzips its chunks in order."""

    def __init__(self, pool: ThreadPoolExecutor, path: Path, level: int) -> None:
        self.path = path
        self.urls = 0
        self.bytes = len(URLSET_HEAD)
        self._chunks: queue.Queue[bytes | None] = queue.Queue(_QUEUE_DEPTH)
        self._done: Future[int] = pool.submit(_compress, path, self._chunks, level)
        self._put(URLSET_HEAD.encode())

    def write(self, text: str, urls: int) -> None:
        self.urls += urls
        self.bytes += len(text)
        self._put(text.encode("ascii"))

    def close(self) -> Future[int]:
        self._put(URLSET_TAIL.encode())
        self._put(None)
        return self._done

    def abandon(self) -> None:
        while True:
            try:
                self._chunks.put_nowait(None)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._chunks.get_nowait()

    def _put(self, chunk: bytes | None) -> None:
        # A dead worker would leave a full queue blocking forever; surface its error.
        while True:
            try:
                self._chunks.put(chunk, timeout=0.2)
                return
            except queue.Full:
                if self._done.done():
                    self._done.result()
                    raise SitemapError(f"compressing {self.path.name} stopped early") from None


def _compress(path: Path, chunks: queue.Queue[bytes | None], level: int) -> int:
    with path.open("wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=level, mtime=0) as gz:
            while (chunk := chunks.get()) is not None:
                gz.write(chunk)
        return raw.tell()


class SitemapWriter:
    """Splits entries into files at the URL or byte limit and writes the index."""

    def __init__(
        self,
        out_dir: Path,
        base_url: str,
        limits: Limits = Limits(),
        level: int = GZIP_LEVEL,
        workers: int = 2,
    ) -> None:
        self.out_dir = out_dir
        self.base_url = base_url.rstrip("/")
        self.limits = limits
        self.level = level
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="gzip")
        self._current: _OpenFile | None = None
        self._closed: list[tuple[str, Path, int, Future[int]]] = []
        self.urls = 0
        if limits.max_bytes < len(URLSET_HEAD) + len(URLSET_TAIL) + 1 or limits.max_urls < 1:
            raise SitemapError("sitemap file limits are too small for any URL")

    def add(self, entries: Entries) -> None:
        """Append rendered entries, starting new files when one is full."""
        start = 0
        while start < len(entries):
            current = self._current or self._open()
            room = self.limits.max_bytes - len(URLSET_TAIL) - current.bytes
            stop = min(len(entries), start + self.limits.max_urls - current.urls)
            text = entries.text(start, stop)
            if len(text) > room:
                stop = _fitting(entries, start, stop, room)
                if stop == start and current.urls == 0:
                    raise SitemapError(
                        f"one URL entry is larger than {self.limits.max_bytes} bytes"
                    )
                current.write(entries.text(start, stop), stop - start)
                self._close()
            else:
                current.write(text, stop - start)
                if current.urls == self.limits.max_urls:
                    self._close()
            self.urls += stop - start
            start = stop

    def finish(self, generated_at: datetime | None = None) -> Generation:
        """Close the last file, wait for compression and write the index."""
        if self._current is None and not self._closed:
            self._open()  # an empty source still gets a valid, empty sitemap
        self._close()
        files = [
            SitemapFile(name, path, done.result(), urls, "application/gzip")
            for name, path, urls, done in self._closed
        ]
        self._pool.shutdown()
        if len(files) > MAX_INDEX_ENTRIES:
            raise SitemapError(f"{len(files)} sitemap files exceed the index limit of 50,000")
        files.append(self._write_index(files, generated_at or datetime.now(UTC)))
        return Generation(tuple(files), self.urls)

    def abort(self) -> None:
        """Stop the workers after a failure; partial files stay behind."""
        if self._current is not None:
            self._current.abandon()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _open(self) -> _OpenFile:
        name = f"sitemap-{len(self._closed) + 1:05d}.xml.gz"
        self._current = _OpenFile(self._pool, self.out_dir / name, self.level)
        return self._current

    def _close(self) -> None:
        current, self._current = self._current, None
        if current is not None:
            self._closed.append((current.path.name, current.path, current.urls, current.close()))

    def _write_index(self, files: Sequence[SitemapFile], generated_at: datetime) -> SitemapFile:
        lastmod = generated_at.astimezone(UTC).isoformat(timespec="seconds")
        locs = escape_batch([f"{self.base_url}/{file.name}" for file in files])
        path = self.out_dir / INDEX_NAME
        with path.open("w", encoding="ascii", newline="\n") as out:
            out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
            out.write('<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n')
            out.writelines(
                f"<sitemap><loc>{loc}</loc><lastmod>{lastmod}</lastmod></sitemap>\n" for loc in locs
            )
            out.write("</sitemapindex>\n")
        return SitemapFile(INDEX_NAME, path, path.stat().st_size, 0, "application/xml")


def _fitting(entries: Entries, start: int, stop: int, room: int) -> int:
    used = 0
    for index in range(start, stop):
        used += entries.size(index)
        if used > room:
            return index
    return stop


def write_sitemaps(
    batches: Iterable[Sequence[Row]],
    out_dir: Path,
    base_url: str,
    limits: Limits = Limits(),
    on_progress: Callable[[int], None] | None = None,
) -> Generation:
    """Render and write every batch of rows into `out_dir`; the real generation step."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*out_dir.glob("sitemap-*.xml.gz"), out_dir / INDEX_NAME]:
        stale.unlink(missing_ok=True)
    writer = SitemapWriter(out_dir, base_url, limits)
    try:
        for rows in batches:
            writer.add(render(rows))
            if on_progress is not None:
                on_progress(len(rows))
        return writer.finish()
    except BaseException:
        writer.abort()
        raise
