"""Where URLs come from: the API's processed bucket, listing its images and nothing else."""

from __future__ import annotations

import gzip
import io
import xml.etree.ElementTree as ET

from service.settings import StorageSettings
from service.sitemaps import storage
from service.sitemaps.bucket_source import bucket_batches
from tests.sitemaps.test_cli import BASE, cli

NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
SITE = "https://images.example.test"


def fill(client, bucket: str, names: list[str]) -> None:
    storage.create_bucket(client, bucket)
    for name in names:
        client.put_object(bucket_name=bucket, object_name=name, data=io.BytesIO(b"x"), length=1)


def test_bucket_source_lists_only_the_apis_images(s3_server, tmp_path):
    """Conversion markers, other prefixes and names that are no SHA-256 never become URLs."""
    client = storage.connect(StorageSettings.from_env(s3_server.env()))
    images = [f"{n:064x}" for n in (1, 2, 3)]
    junk = [
        f"sources/{images[0]}",  # the API's conversion marker
        f"sources/{images[1]}",
        f"nested/{images[2]}",
        images[0].upper(),
        images[0][:-1],
        images[0] + "0",
        f"{images[0]}.png",
        "README",
    ]
    fill(client, "sitemap-source-images", [*images, *junk])
    rows = [row for batch in bucket_batches(client, "sitemap-source-images", SITE) for row in batch]
    assert [loc for loc, _ in rows] == [f"{SITE}/processed/{name}" for name in images]

    env = {**s3_server.env(), "PROCESSED_BUCKET": "sitemap-source-images"}
    out = tmp_path / "out"
    result = cli("generate", "--base-url", BASE, "--site-url", SITE, "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    root = ET.fromstring(gzip.decompress((out / "sitemap-00001.xml.gz").read_bytes()))
    assert [url.findtext(f"{NS}loc") for url in root] == [
        f"{SITE}/processed/{name}" for name in images
    ]


def test_bucket_source_batches_a_long_listing(s3_server):
    client = storage.connect(StorageSettings.from_env(s3_server.env()))
    images = [f"{n:064x}" for n in range(25)]
    fill(client, "sitemap-source-batches", [*images, *(f"sources/{name}" for name in images)])
    batches = list(bucket_batches(client, "sitemap-source-batches", SITE, batch_size=10))
    assert [len(batch) for batch in batches] == [10, 10, 5]
