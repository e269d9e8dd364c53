"""The MinIO side of publishing: buckets, uploads, the public policy, checks and deletion."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import urllib3
from minio import Minio
from minio.commonconfig import Tags
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error

from service.settings import StorageSettings
from service.sitemaps.errors import SitemapError
from service.sitemaps.naming import is_generation
from service.sitemaps.writer import INDEX_NAME, Generation
from service.storage import close_response, minio_client

WENT_LIVE_TAG = "went-live"
# Markers that keep a rollback and a publish's clean-up from racing (see Publisher.rollback).
ROLLBACK_TARGET = ".rollback-target"
DELETING = ".deleting"
CLAIM_TTL = timedelta(minutes=15)
_SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


def connect(settings: StorageSettings, workers: int = 8) -> Minio:
    """A MinIO client that fails fast when the endpoint is down."""
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=5, read=60),
        maxsize=workers,
        retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )
    return minio_client(settings, http)


@contextmanager
def refusals(client: Minio) -> Iterator[None]:
    """Turn storage failures into one-line errors."""
    where = client._base_url.host
    try:
        yield
    except S3Error as error:
        raise SitemapError(f"storage refused at {where}: {error.code}: {error.message}") from None
    except (urllib3.exceptions.HTTPError, MinioException, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise SitemapError(f"storage refused at {where}: {' '.join(str(reason).split())}") from None


def policy(bucket: str) -> dict[str, object]:
    """The anonymous policy: read objects by name, never list them."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PublicReadObjects",
                "Effect": "Allow",
                "Principal": {"AWS": ["*"]},
                "Action": ["s3:GetObject"],
                "Resource": [f"arn:aws:s3:::{bucket}/*"],
            }
        ],
    }


def create_bucket(client: Minio, bucket: str) -> None:
    """Create the bucket; harmless when it exists already."""
    try:
        client.make_bucket(bucket_name=bucket)
    except S3Error as error:
        if error.code != "BucketAlreadyOwnedByYou":
            raise


def upload(
    client: Minio,
    bucket: str,
    generation: Generation,
    workers: int = 8,
    on_file: Callable[[], None] | None = None,
) -> None:
    """Upload every file in parallel with the content types search engines expect."""

    def put(index: int) -> None:
        file = generation.files[index]
        client.fput_object(
            bucket_name=bucket,
            object_name=file.name,
            file_path=str(file.path),
            content_type=file.content_type,
        )
        if on_file is not None:
            on_file()

    with ThreadPoolExecutor(workers, thread_name_prefix="upload") as pool:
        list(pool.map(put, range(len(generation.files))))


def make_public(client: Minio, bucket: str) -> None:
    """Allow anonymous `s3:GetObject` on the bucket's objects, nothing else."""
    client.set_bucket_policy(bucket_name=bucket, policy=json.dumps(policy(bucket)))


def verify(client: Minio, bucket: str, sizes: dict[str, int]) -> None:
    """Check that every object exists with the expected size."""
    for name, size in sizes.items():
        try:
            found = client.stat_object(bucket_name=bucket, object_name=name).size
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
                raise SitemapError(f"verification failed: {bucket}/{name} is missing") from None
            raise
        if found != size:
            raise SitemapError(
                f"verification failed: {bucket}/{name} has {found} bytes, expected {size}"
            )


def published_sizes(client: Minio, bucket: str) -> dict[str, int]:
    """The files a bucket's index lists, with their stored sizes; fails if any is missing."""
    response = client.get_object(bucket_name=bucket, object_name=INDEX_NAME)
    try:
        data = response.read()
    finally:
        close_response(response)
    try:
        root = ET.fromstring(data)  # noqa: S314 - our own index from our own bucket
    except ET.ParseError:
        raise SitemapError(f"{bucket}/{INDEX_NAME} is not a well-formed index") from None
    sizes = {INDEX_NAME: len(data)}
    for loc in root.iter(f"{_SITEMAP_NS}loc"):
        name = (loc.text or "").rsplit("/", 1)[-1]
        try:
            sizes[name] = client.stat_object(bucket_name=bucket, object_name=name).size or 0
        except S3Error as error:
            raise SitemapError(f"{bucket} is incomplete: {name} is {error.code}") from None
    return sizes


def generations(client: Minio) -> list[str]:
    """Every generation bucket, oldest first."""
    return sorted(bucket.name for bucket in client.list_buckets() if is_generation(bucket.name))


def mark_went_live(client: Minio, bucket: str) -> None:
    """Record on the bucket that it has served as the live generation."""
    tags = Tags.new_bucket_tags()
    tags[WENT_LIVE_TAG] = datetime.now(UTC).strftime("%Y%m%dt%H%M%Sz")
    client.set_bucket_tags(bucket_name=bucket, tags=tags)


def went_live(client: Minio, bucket: str) -> bool:
    """Whether the bucket ever served as the live generation."""
    try:
        tags = client.get_bucket_tags(bucket_name=bucket)
    except S3Error as error:
        if error.code in ("NoSuchBucket", "NoSuchTagSet"):
            return False
        raise
    return tags is not None and WENT_LIVE_TAG in tags


def claim(client: Minio, bucket: str, marker: str) -> bool:
    """Put the empty `marker` object into the bucket; False if the bucket is gone."""
    try:
        client.put_object(bucket_name=bucket, object_name=marker, data=io.BytesIO(b""), length=0)
    except S3Error as error:
        if error.code == "NoSuchBucket":
            return False
        raise
    return True


def claimed(client: Minio, bucket: str, marker: str) -> bool:
    """Whether the bucket holds `marker`, put there less than CLAIM_TTL ago.

    An older one was left by a run that crashed, and no longer counts.
    """
    try:
        stat = client.stat_object(bucket_name=bucket, object_name=marker)
    except S3Error as error:
        if error.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
            return False
        raise
    modified = stat.last_modified
    return modified is None or datetime.now(UTC) - modified < CLAIM_TTL


def release(client: Minio, bucket: str, marker: str) -> None:
    """Remove `marker` from the bucket; gone already is fine."""
    try:
        client.remove_object(bucket_name=bucket, object_name=marker)
    except S3Error as error:
        if error.code != "NoSuchBucket":
            raise


def delete_bucket(client: Minio, bucket: str) -> None:
    """Empty the bucket, then delete it; gone already is fine.

    The DELETING marker goes last: while any sitemap object is left, a rollback that
    looks for the marker finds it, and refuses to switch to a half-deleted generation.
    """
    try:
        while names := [
            obj.object_name
            for obj in client.list_objects(bucket_name=bucket, recursive=True)
            if obj.object_name and obj.object_name != DELETING
        ]:
            _remove(client, bucket, names)
        _remove(client, bucket, [DELETING])
        client.remove_bucket(bucket_name=bucket)
    except S3Error as error:
        if error.code != "NoSuchBucket":
            raise


def _remove(client: Minio, bucket: str, names: list[str]) -> None:
    # minio-py 8 renames delete_object_list to objects.
    deletes = (DeleteObject(name) for name in names)
    failures = list(client.remove_objects(bucket_name=bucket, delete_object_list=deletes))
    if failures:
        raise SitemapError(f"could not empty {bucket}: {failures[0].message}")


def sizes_of(generation: Generation) -> dict[str, int]:
    """Object name to size for every file of a generation."""
    return {file.name: file.size for file in generation.files}
