"""Content-addressed objects in MinIO, with every wait bounded and every failure classified."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any, TypeVar

import urllib3
from minio import Minio
from minio.commonconfig import Tags
from minio.error import MinioException, S3Error
from urllib3.exceptions import HTTPError

from service.settings import STORAGE_CONNECT_SECONDS, STORAGE_RETRIES, StorageSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

CHUNK_BYTES = 64 * 1024
# At most this many writes off the request path wait their turn; more are dropped, which
# only costs a later repeat of the work they would have saved.
BACKLOG = 64
_MISSING = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"})
_CREATED_ELSEWHERE = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})


class StorageUnavailableError(Exception):
    """Storage could not be reached or did not answer as it should; the API answers 503."""


class NotStoredError(Exception):
    """No object has that name; the API answers 404."""


@dataclass
class StoredObject:
    """An object being read from storage: its headers, and its body as an iterable of chunks."""

    content_type: str
    size: int
    _response: urllib3.BaseHTTPResponse
    tagged: bool = False  # the object carries tags (x-amz-tagging-count)
    _first: bytes = b""
    _rest: Iterator[bytes] | None = None

    def begin(self) -> None:
        """Read the first chunk now, while an error can still be a 503.

        The WSGI server sends the status with the first chunk: storage stalling before it
        would otherwise surface there, as the server's own HTML 500.
        """
        self._rest = self._response.stream(CHUNK_BYTES)
        self._first = next(self._rest, b"")

    def __iter__(self) -> Iterator[bytes]:
        if self._rest is None:
            self.begin()
        assert self._rest is not None
        if self._first:
            yield self._first
        yield from self._rest

    def read_into(self, target: IO[bytes]) -> None:
        """Copy the whole body into `target`, a chunk at a time, and rewind it."""
        try:
            for chunk in self:
                target.write(chunk)
        except (HTTPError, OSError) as error:
            raise StorageUnavailableError("Storage broke off while sending an object.") from error
        target.seek(0)

    def close(self) -> None:
        """Give the connection back to the pool; the WSGI server calls this after the body.

        A body read to its end has already given its connection back, which stays open for
        the next call; one left unread closes it.
        """
        close_response(self._response)


def close_response(response: Any) -> None:
    """Close a get_object response and give its connection back to the pool.

    minio-py 7.2 hands back urllib3's response, which needs both calls; minio-py 8 its own,
    whose close() does both and which has no release_conn().
    """
    response.close()
    release = getattr(response, "release_conn", None)
    if release is not None:
        release()


def _client(settings: StorageSettings, timeout_seconds: float, connections: int) -> Minio:
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(
            connect=min(STORAGE_CONNECT_SECONDS, timeout_seconds), read=timeout_seconds
        ),
        # One quick retry of a refused connection and of a 5xx answer (S3 asks clients to
        # retry InternalError, and every call here is idempotent: objects are named by their
        # bytes), none of a read: a stopped server must not multiply the time a request waits.
        retries=urllib3.Retry(
            total=STORAGE_RETRIES,
            connect=1,
            read=0,
            redirect=0,
            status=1,
            other=0,
            allowed_methods=None,
            status_forcelist=(500, 502, 503, 504),
            respect_retry_after_header=False,
            raise_on_status=False,
        ),
        maxsize=connections,
    )
    return minio_client(settings, http)


def minio_client(settings: StorageSettings, http: urllib3.PoolManager) -> Minio:
    """A client of the storage the settings name, over `http` (its timeouts and retries)."""
    return Minio(
        endpoint=settings.endpoint,
        access_key=settings.access_key,
        secret_key=settings.secret_key,
        secure=settings.secure,
        region=settings.region,
        http_client=http,
    )


class Storage:
    """The two buckets of the API, created when missing, with storage errors made explicit."""

    def __init__(self, settings: StorageSettings, timeout_seconds: float) -> None:
        self.incoming = settings.incoming_bucket
        self.processed = settings.processed_bucket
        self.client = _client(settings, timeout_seconds, connections=16)
        self.endpoint = settings.endpoint
        self._buckets_ready = False
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="storage-later")
        self._backlog = threading.BoundedSemaphore(BACKLOG)
        # A client of its own: under gevent a socket belongs to the hub of the thread that
        # opened it, so the background thread must never reuse the request path's connections.
        self._background_client = _client(settings, timeout_seconds, connections=1)

    def ensure_buckets(self) -> None:
        """Create whichever bucket is missing; a replica creating it at the same time is fine."""
        for bucket in (self.incoming, self.processed):
            if self._call(self.client.bucket_exists, bucket_name=bucket):
                continue
            try:
                self._call(self.client.make_bucket, bucket_name=bucket)
                log.info("created bucket", extra={"bucket": bucket})
            except S3Error as error:
                if error.code not in _CREATED_ELSEWHERE:
                    raise StorageUnavailableError(
                        f"Storage refused to create bucket {bucket}."
                    ) from None
        self._buckets_ready = True

    def exists(self, bucket: str, name: str) -> bool:
        try:
            self.stat(bucket, name)
        except NotStoredError:
            return False
        return True

    def stat(self, bucket: str, name: str) -> Mapping[str, str]:
        """The object's metadata headers (x-amz-meta-*, content type, …)."""
        try:
            stat = self._call(self.client.stat_object, bucket_name=bucket, object_name=name)
            return stat.metadata or {}
        except S3Error as error:
            raise self._classify(error) from None

    def open(self, bucket: str, name: str) -> StoredObject:
        try:
            response = self._call(self.client.get_object, bucket_name=bucket, object_name=name)
        except S3Error as error:
            raise self._classify(error) from None
        stored = StoredObject(
            content_type=response.headers.get("Content-Type", "application/octet-stream"),
            size=int(response.headers.get("Content-Length", "0")),
            _response=response,
            tagged=response.headers.get("x-amz-tagging-count", "0") not in ("", "0"),
        )
        try:
            stored.begin()
        except (HTTPError, OSError) as error:
            stored.close()
            raise StorageUnavailableError("Storage broke off while sending an object.") from error
        return stored

    def tag(self, bucket: str, name: str, key: str) -> str | None:
        """The value of the object's tag `key`, or None when it has none."""
        try:
            tags = self._call(self.client.get_object_tags, bucket_name=bucket, object_name=name)
        except S3Error as error:
            raise self._classify(error) from None
        return None if tags is None else tags.get(key)

    def tag_later(self, bucket: str, name: str, key: str, value: str) -> None:
        """Set a tag on the object off the request path; dropped when storage is behind."""
        if not self._backlog.acquire(blocking=False):
            return
        tags = Tags.new_object_tags()
        tags[key] = value

        def write() -> None:
            try:
                self._call(
                    self._background_client.set_object_tags,
                    bucket_name=bucket,
                    object_name=name,
                    tags=tags,
                )
            except (S3Error, StorageUnavailableError) as error:
                log.warning("could not tag %s/%s: %s", bucket, name, error)
            finally:
                self._backlog.release()

        self._background.submit(write)

    def put(
        self,
        bucket: str,
        name: str,
        data: IO[bytes],
        size: int,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Store an object, creating the buckets first if storage came back empty."""
        if not self._buckets_ready:
            self._ensure_once()
        start = data.tell()
        for retry in (False, True):
            try:
                self._put(bucket, name, data, size, content_type, metadata)
                return
            except S3Error as error:
                if retry or error.code != "NoSuchBucket":
                    raise StorageUnavailableError(
                        f"Storage refused to store the object ({error.code})."
                    ) from None
            # Storage lost its buckets (a restart of an empty server): make them, then once more.
            self._buckets_ready = False
            self._ensure_once()
            data.seek(start)

    def put_if_absent(
        self, bucket: str, name: str, data: IO[bytes], size: int, content_type: str
    ) -> None:
        """Store a content-addressed object unless it is there already."""
        if not self.exists(bucket, name):
            self.put(bucket, name, data, size, content_type)

    def _put(
        self,
        bucket: str,
        name: str,
        data: IO[bytes],
        size: int,
        content_type: str,
        metadata: Mapping[str, str] | None,
    ) -> None:
        self._call(
            self.client.put_object,
            bucket_name=bucket,
            object_name=name,
            data=data,
            length=size,
            content_type=content_type,
            # minio-py 8 renames metadata to user_metadata.
            metadata=dict(metadata) if metadata else None,
        )

    def _ensure_once(self) -> None:
        # No lock: ensure_buckets may run twice harmlessly, while a native lock held across
        # its network calls would stop a whole gevent worker (its threads are not patched).
        if not self._buckets_ready:
            self.ensure_buckets()

    def _classify(self, error: S3Error) -> Exception:
        if error.code in _MISSING:
            if error.code == "NoSuchBucket":
                self._buckets_ready = False
            return NotStoredError(error.code)
        return StorageUnavailableError(f"Storage answered with an error ({error.code}).")

    @staticmethod
    def _call(method: Callable[..., T], **kwargs: object) -> T:
        """Call minio, turning unreachable storage into StorageUnavailableError; S3Error passes.

        Keyword arguments only: minio-py 8 takes no others.
        """
        try:
            return method(**kwargs)
        except S3Error:
            raise
        except (MinioException, HTTPError, OSError) as error:
            raise StorageUnavailableError("Storage is unreachable.") from error
