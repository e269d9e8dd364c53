"""Stream one URL per image the API stored in its processed bucket, and nothing else."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from minio import Minio

from service.sitemaps import storage

BATCH_SIZE = 10_000
# The API names an image by the lowercase hex SHA-256 of its bytes, at the top of the
# bucket; whatever else it keeps there (conversion markers under `sources/`, …) is no page.
IMAGE_NAME = re.compile(r"[0-9a-f]{64}")


def bucket_batches(
    client: Minio, bucket: str, site_url: str, batch_size: int = BATCH_SIZE
) -> Iterator[Sequence[tuple[str, object]]]:
    """Batches of `(<site-url>/processed/<name>, last modified)` rows, listed page by page.

    The listing is not recursive, so the API's prefixes cost one entry each, not one per object.
    """
    prefix = f"{site_url.rstrip('/')}/processed/"
    batch: list[tuple[str, object]] = []
    with storage.refusals(client):
        for item in client.list_objects(bucket_name=bucket, recursive=False):
            name = item.object_name
            if item.is_dir or name is None or not IMAGE_NAME.fullmatch(name):
                continue
            batch.append((prefix + name, item.last_modified))
            if len(batch) == batch_size:
                yield batch
                batch = []
    if batch:
        yield batch
