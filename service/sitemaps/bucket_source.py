"""Stream one URL per stored image of the API's processed bucket."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from minio import Minio

from service.sitemaps import storage

BATCH_SIZE = 10_000


def bucket_batches(
    client: Minio, bucket: str, site_url: str, batch_size: int = BATCH_SIZE
) -> Iterator[Sequence[tuple[str, object]]]:
    """Batches of `(<site-url>/processed/<name>, last modified)` rows, listed page by page."""
    prefix = f"{site_url.rstrip('/')}/processed/"
    batch: list[tuple[str, object]] = []
    with storage.refusals(client):
        for item in client.list_objects(bucket, recursive=True):
            if item.object_name is None or item.is_dir:
                continue
            batch.append((prefix + item.object_name, item.last_modified))
            if len(batch) == batch_size:
                yield batch
                batch = []
    if batch:
        yield batch
