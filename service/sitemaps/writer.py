"""Stream rendered entries into gzip sitemap files and a sitemap index."""

from __future__ import annotations

import contextlib
import ctypes
import gzip
import logging
import multiprocessing
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from service.sitemaps.entries import Entries, Row, render
from service.sitemaps.errors import RowError, SitemapError
from service.sitemaps.locs import escape_batch
from service.sitemaps.sections import Section
from service.sitemaps.stopping import stops_held

log = logging.getLogger("service.sitemaps")
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
# How long a worker process has to exit once it is done or told to stop.
_WORKER_EXIT_SECONDS = 5.0
# How often a gzip thread waiting for its next chunk checks that its feeder still runs.
_FEEDER_POLL_SECONDS = 0.5


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


class EmptySourceError(SitemapError):
    """No section had a single URL: there is nothing valid to write."""


class _OpenFile:
    """A sitemap file being written; a worker thread gzips its chunks in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.urls = 0
        self.bytes = len(URLSET_HEAD)
        self._chunks: queue.Queue[bytes | None] = queue.Queue(_QUEUE_DEPTH)
        self._done: Future[int] | None = None

    def start(self, pool: ThreadPoolExecutor, level: int, feeder: threading.Thread) -> None:
        """Start the file's gzip task and write the head."""
        self._done = pool.submit(_compress, self.path, self._chunks, level, feeder)
        self._put(URLSET_HEAD.encode())

    def write(self, data: bytes, urls: int) -> None:
        self.urls += urls
        self.bytes += len(data)
        self._put(data)

    def close(self) -> Future[int]:
        assert self._done is not None, "close() of a file that was never started"
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
                if self._done is not None and self._done.done():
                    self._done.result()
                    raise SitemapError(f"compressing {self.path.name} stopped early") from None


def _compress(
    path: Path, chunks: queue.Queue[bytes | None], level: int, feeder: threading.Thread
) -> int:
    with path.open("wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=level, mtime=0) as gz:
            while (chunk := _next_chunk(chunks, feeder)) is not None:
                gz.write(chunk)
        return raw.tell()


def _next_chunk(chunks: queue.Queue[bytes | None], feeder: threading.Thread) -> bytes | None:
    """The next chunk, or None at the end of the file.

    The wait gives up once the thread that feeds the queue has ended: a stop that lands before
    the writer can abandon its files must not leave this thread waiting, since the interpreter
    joins the pool's threads at exit. (The main thread counts as ended once the interpreter
    begins to exit, before it joins the other threads.)
    """
    while True:
        try:
            return chunks.get(timeout=_FEEDER_POLL_SECONDS)
        except queue.Empty:
            if not feeder.is_alive():
                raise SitemapError("the thread writing the file ended without closing it") from None


class SitemapWriter:
    """Splits entries into files at the URL or byte limit; gzip runs in worker threads."""

    def __init__(
        self,
        out_dir: Path,
        limits: Limits = Limits(),
        level: int = GZIP_LEVEL,
        workers: int = 2,
        prefix: str = "sitemap-",
    ) -> None:
        self.out_dir = out_dir
        self.limits = limits
        self.level = level
        self.prefix = prefix
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="gzip")
        self._feeder = threading.current_thread()
        self._current: _OpenFile | None = None
        self._closed: list[tuple[Path, int, Future[int]]] = []
        if limits.max_bytes < len(URLSET_HEAD) + len(URLSET_TAIL) + 1 or limits.max_urls < 1:
            raise SitemapError("sitemap file limits are too small for any URL")

    def add(self, entries: Entries) -> None:
        """Append rendered entries, starting new files when one is full."""
        start = 0
        while start < len(entries):
            current = self._current or self._open()
            room = self.limits.max_bytes - len(URLSET_TAIL) - current.bytes
            stop = min(len(entries), start + self.limits.max_urls - current.urls)
            data = entries.text(start, stop)
            if len(data) > room:
                stop = _fitting(entries, start, stop, room)
                if stop == start and current.urls == 0:
                    raise SitemapError(
                        f"one URL entry is larger than {self.limits.max_bytes} bytes"
                    )
                current.write(entries.text(start, stop), stop - start)
                self._close()
            else:
                current.write(data, stop - start)
                if current.urls == self.limits.max_urls:
                    self._close()
            start = stop

    def finish(self) -> list[SitemapFile]:
        """Close the last file and wait for compression; no rows, no file."""
        self._close()
        files = [
            SitemapFile(path.name, path, done.result(), urls, "application/gzip")
            for path, urls, done in self._closed
        ]
        self._pool.shutdown()
        return files

    def abort(self) -> None:
        """Stop the gzip tasks after a failure or a stop, and wait for them to end (each is
        at most a few chunks from its end), so that no file is still being written when the
        caller removes it; partial files stay behind (`write_sections` removes them)."""
        if self._current is not None:
            self._current.abandon()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # A stop (see stopping.py) may raise at any line: a file is the current one from before its
    # gzip task starts until it is closed and listed, so that `abort` always reaches its task.

    def _open(self) -> _OpenFile:
        name = f"{self.prefix}{len(self._closed) + 1:05d}.xml.gz"
        opened = _OpenFile(self.out_dir / name)
        self._current = opened
        opened.start(self._pool, self.level, self._feeder)
        return opened

    def _close(self) -> None:
        current = self._current
        if current is not None:
            self._closed.append((current.path, current.urls, current.close()))
        self._current = None


def write_index(
    out_dir: Path, base_url: str, files: Sequence[SitemapFile], generated_at: datetime
) -> SitemapFile:
    """The sitemap index listing every file under `base_url`."""
    if len(files) > MAX_INDEX_ENTRIES:
        raise SitemapError(f"{len(files)} sitemap files exceed the index limit of 50,000")
    lastmod = generated_at.astimezone(UTC).isoformat(timespec="seconds")
    locs = escape_batch([f"{base_url.rstrip('/')}/{file.name}" for file in files])
    path = out_dir / INDEX_NAME
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


class Snapshot(Protocol):
    """The source's rows as one worker process sees them."""

    def count(self) -> int: ...

    def rows(self, offset: int) -> Iterator[Sequence[Row]]: ...


class Tail(Protocol):
    """What a worker process is given (so it must pickle) to read the rest of the rows."""

    def snapshot(self) -> AbstractContextManager[Snapshot]: ...


@runtime_checkable
class Splittable(Protocol):
    """A source whose rows this process reads from the start and a worker from an offset."""

    def split(
        self,
    ) -> AbstractContextManager[tuple[Iterator[Sequence[Row]], Tail] | None]: ...


def write_sitemaps(
    batches: Iterable[Sequence[Row]],
    out_dir: Path,
    base_url: str,
    limits: Limits = Limits(),
    on_progress: Callable[[int], None] | None = None,
    parallel: bool = True,
) -> Generation:
    """One unnamed section's rows into `sitemap-00001.xml.gz`, …, and the index."""
    return write_sections([Section("", batches)], out_dir, base_url, limits, on_progress, parallel)


def write_sections(
    sections: Sequence[Section],
    out_dir: Path,
    base_url: str,
    limits: Limits = Limits(),
    on_progress: Callable[[int], None] | None = None,
    parallel: bool = True,
) -> Generation:
    """Render and write every section's rows into `out_dir`, one index over all of their
    files; the real generation step. The limits hold per file, whatever the section.

    A `Splittable` source is shared with one worker process, so that both cores read,
    render and compress (threads would serialize on the GIL): see `_write_split`.
    Other sources stream through this process alone.

    A generation that fails (or has no URLs) leaves nothing behind: no file it wrote, and
    none of the directories it made for `out_dir`.
    """
    made = [path for path in (out_dir, *out_dir.parents) if not path.exists()]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        _remove_directories(made)
        raise SitemapError(f"cannot make the directory {out_dir}: {error.strerror}") from None
    _remove_generation(out_dir)
    try:
        return _write_generation(sections, out_dir, base_url, limits, on_progress, parallel)
    except BaseException:
        _remove_generation(out_dir)
        _remove_directories(made)
        raise


def _remove_directories(made: list[Path]) -> None:
    """Directories made for the output, deepest first, each only while it is empty."""
    for directory in made:
        with contextlib.suppress(OSError):
            directory.rmdir()


def _remove_generation(out_dir: Path) -> None:
    """The files a generation writes into `out_dir`, gone."""
    for path in [*out_dir.glob("sitemap-*.xml.gz"), *out_dir.glob("part-*.xml.gz")]:
        path.unlink()
    (out_dir / INDEX_NAME).unlink(missing_ok=True)


def _write_generation(
    sections: Sequence[Section],
    out_dir: Path,
    base_url: str,
    limits: Limits,
    on_progress: Callable[[int], None] | None,
    parallel: bool,
) -> Generation:
    progress = on_progress or (lambda _: None)
    files: list[SitemapFile] = []
    for section in sections:
        written = _write_section(section, out_dir, limits, progress, parallel)
        if not written:
            log.info("generate: section %r has no URLs", section.name or "(unnamed)")
        files += written
        if len(files) > MAX_INDEX_ENTRIES:  # before minutes more of writing
            raise SitemapError(f"{len(files)} sitemap files exceed the index limit of 50,000")
    if not files:
        # Neither an empty <urlset> nor an empty <sitemapindex> is valid under the schemas.
        raise EmptySourceError("the source has no URLs")
    index = write_index(out_dir, base_url, files, datetime.now(UTC))
    return Generation((*files, index), sum(file.urls for file in files))


def _write_section(
    section: Section,
    out_dir: Path,
    limits: Limits,
    progress: Callable[[int], None],
    parallel: bool,
) -> list[SitemapFile]:
    batches = section.batches
    where = f"section {section.name!r}" if section.name else "the source"
    if parallel and isinstance(batches, Splittable):
        with batches.split() as split:
            if split is not None:
                return _write_split(*split, out_dir, limits, progress, section.prefix, where)
    return _write_files(batches, out_dir, limits, progress, section.prefix, where)


def _rendered(rows: Sequence[Row], before: int, where: str) -> Entries:
    """The batch's entries; a bad value's error names its row (counted from 1) and section."""
    try:
        return render(rows)
    except RowError as error:
        raise SitemapError(f"row {before + error.row + 1:,} of {where}: {error}") from None


def _write_files(
    batches: Iterable[Sequence[Row]],
    out_dir: Path,
    limits: Limits,
    on_progress: Callable[[int], None],
    prefix: str,
    where: str,
    first_row: int = 0,
) -> list[SitemapFile]:
    writer = SitemapWriter(out_dir, limits, prefix=prefix)
    before = first_row
    try:
        for rows in batches:
            writer.add(_rendered(rows, before, where))
            before += len(rows)
            on_progress(len(rows))
        return writer.finish()
    except BaseException:
        writer.abort()
        raise


def _write_split(
    head: Iterator[Sequence[Row]],
    tail: Tail,
    out_dir: Path,
    limits: Limits,
    on_progress: Callable[[int], None],
    prefix: str,
    where: str,
) -> list[SitemapFile]:
    """Write the rows up to a split point here, and the rest in a worker process.

    Once a first file is full, the worker starts, opens its snapshot and counts the
    rows (while this process keeps writing), and this process answers with the split
    point: the multiple of the per-file URL limit that leaves each about half of what
    remains. Files are then renamed into one sequence, so unless the byte limit ends a
    file early, the output is byte for byte what one process would write.
    """
    # 'spawn': a fork would copy open database connections and threads into the child.
    context = multiprocessing.get_context("spawn")
    # Rows written by the worker, for progress: it is the only writer, so no lock.
    done = context.RawValue(ctypes.c_int64, 0)
    channel, worker_end = context.Pipe()
    worker: BaseProcess | None = None
    writer = SitemapWriter(out_dir, limits, prefix=prefix)
    position, stop, seen = 0, -1, 0
    try:
        for batch in head:
            rows = batch[: stop - position] if stop >= 0 else batch
            writer.add(_rendered(rows, position, where))
            position += len(rows)
            total = done.value
            on_progress(len(rows) + total - seen)
            seen = total
            if position == stop:
                break
            if worker is None and position >= limits.max_urls:
                # Held, so that `worker` names a started process or none at all.
                with stops_held():
                    started = context.Process(
                        target=_worker,
                        args=(tail, out_dir, limits, done, worker_end, where),
                        name="sitemaps-worker",
                        daemon=True,
                    )
                    started.start()
                    worker = started
                worker_end.close()  # so that a dead worker reads as EOF here
            elif worker is not None and stop < 0 and channel.poll():
                stop = _split_point(position, _answer(channel, int), limits.max_urls)
                channel.send(stop)
        files = writer.finish()
        if worker is not None:
            if stop < 0:  # the rows ran out before the worker had counted them
                _answer(channel, int)
                channel.send(position)
            files.extend(_answer(channel, list))
            on_progress(done.value - seen)
    except BaseException:
        writer.abort()
        raise
    finally:
        # The worker first: closing the channel under a worker that still runs would wake it
        # with an error about a pipe, at a moment when only the stop is news.
        if worker is not None:
            _end(worker)
        channel.close()
        worker_end.close()
    renamed = []
    for number, file in enumerate(files, start=1):
        path = out_dir / f"{prefix}{number:05d}.xml.gz"
        if path != file.path:
            file.path.rename(path)
        renamed.append(replace(file, name=path.name, path=path))
    return renamed


def _end(worker: BaseProcess) -> None:
    """Wait for the worker to exit; stop it first if it still runs (a failure or a stop)."""
    if worker.is_alive():
        worker.terminate()
    worker.join(_WORKER_EXIT_SECONDS)
    if worker.is_alive():  # SIGTERM is only a request; SIGKILL is not
        worker.kill()
        worker.join(_WORKER_EXIT_SECONDS)


def _split_point(position: int, count: int, multiple: int) -> int:
    if count < 0:  # the worker could not count: this process reads everything
        return sys.maxsize
    half = max(position, (position + count + 1) // 2)
    return -(-half // multiple) * multiple


T = TypeVar("T")


def _answer(channel: Connection, kind: type[T]) -> T:
    try:
        message = channel.recv()
    except EOFError:
        raise SitemapError("the sitemap worker process died") from None
    if isinstance(message, str):
        raise SitemapError(message)
    if not isinstance(message, kind):
        raise SitemapError(f"the sitemap worker process sent {message!r}")
    return message


def _worker(
    tail: Tail,
    out_dir: Path,
    limits: Limits,
    done: ctypes.c_int64,
    channel: Connection,
    where: str,
) -> None:
    """The worker process: count, learn the split point, write the rest, send the files."""

    def progress(rows: int) -> None:
        done.value += rows

    try:
        with tail.snapshot() as snapshot:
            try:
                count = snapshot.count()
            except SitemapError:
                # Typically "database is locked": a writer waits for the main process's
                # read lock and keeps new readers out; the main process then reads it all.
                count = -1
            channel.send(count)
            start: int = channel.recv()
            rows = snapshot.rows(start) if start < count else iter(())
            channel.send(_write_files(rows, out_dir, limits, progress, "part-", where, start))
    except SitemapError as error:
        _report(channel, str(error))
    except Exception as error:
        _report(channel, f"sitemap worker: {type(error).__name__}: {error}")
    finally:
        channel.close()


def _report(channel: Connection, message: str) -> None:
    """Tell the main process why the worker failed, unless its end is closed: it closes it
    when it stops, and then says why itself (a traceback here would follow its one line)."""
    with contextlib.suppress(ConnectionError):
        channel.send(message)
