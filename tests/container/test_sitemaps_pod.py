"""The sitemap job's container, run as the dev stack's CronJob declares it.

`generate` runs from SQLite and from a real PostgreSQL server; `publish` runs the CronJob's own
command against the suite's Kubernetes API stand-in (over HTTPS, with the service-account files
a pod gets) and an S3 server. SIGTERM in the middle of a publish must leave the Ingress alone.
Not Kubernetes: see test_api_pod.py's docstring for what this leaves out.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from minio import Minio

from service.sitemaps.naming import is_generation
from service.sitemaps.stopping import EXIT_CODE
from tests.conftest import S3Server
from tests.container.conftest import ClusterApi
from tests.container.engine import HOST_LOOPBACK, Build
from tests.container.pod import PodContainer, Running, start
from tests.postgres import PostgresServer

# The first test of a session builds the image: a cold build takes minutes (docs/testing.md).
pytestmark = pytest.mark.timeout(1500)

ROWS = 1_200
QUERY = "SELECT loc, lastmod FROM items ORDER BY id"
STOPPED_LINE = "sitemaps: stopped by SIGTERM before publish finished; nothing was half-published"


def _generate_command(spec: PodContainer, *options: str) -> list[str]:
    """The CronJob's command with `generate` in place of its `publish`."""
    command = list(spec.container["command"])
    assert command[-1] == "publish", command
    return [*command[:-1], "generate", "--source", "sql", "--query", QUERY, *options]


def _storage(server: S3Server) -> dict[str, str]:
    """The MinIO Service's address becomes the test's S3 server on the host's loopback."""
    return {
        "MINIO_ENDPOINT": f"{HOST_LOOPBACK}:{server.port}",
        "MINIO_ACCESS_KEY": server.access_key,
        "MINIO_SECRET_KEY": server.secret_key,
    }


def _urls_in(out: Path) -> list[str]:
    urls = []
    for path in sorted(out.glob("sitemap-*.xml.gz")):
        urls += re.findall(r"<loc>([^<]+)</loc>", gzip.decompress(path.read_bytes()).decode())
    return urls


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)  # the container's user writes here
    return out


@pytest.fixture
def container() -> Iterator[list[Running]]:
    """Containers a test starts, removed afterwards."""
    started: list[Running] = []
    yield started
    for running in started:
        running.remove()


def test_generate_from_sqlite(
    built: Build,
    job_spec: PodContainer,
    cluster_api: ClusterApi,
    tmp_path: Path,
    out_dir: Path,
    container: list[Running],
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    with sqlite3.connect(data / "catalog.db") as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, loc TEXT, lastmod TEXT)")
        db.executemany(
            "INSERT INTO items (loc, lastmod) VALUES (?, ?)",
            [(f"https://shop.test/item/{n}", "2026-11-01") for n in range(ROWS)],
        )
    (data / "catalog.db").chmod(0o644)
    command = _generate_command(
        job_spec, "--database-url", "sqlite:////data/catalog.db", "--out", "/out"
    )
    # The test's own mounts: the database read-only, and a directory to read the files back.
    mounts = {data: "/data:ro", out_dir: "/out"}
    account = cluster_api.account
    running = start(job_spec, built.image, {}, account, extra_mounts=mounts, command=command)
    container.append(running)
    assert running.wait(120) == 0, running.logs()
    assert _urls_in(out_dir) == [f"https://shop.test/item/{n}" for n in range(ROWS)]
    assert (out_dir / "sitemap.xml").is_file()


def test_generate_from_postgresql(
    built: Build,
    job_spec: PodContainer,
    postgres_server: PostgresServer,
    cluster_api: ClusterApi,
    out_dir: Path,
    container: list[Running],
) -> None:
    import psycopg

    with psycopg.connect(postgres_server.dsn, autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS items")
        connection.execute("CREATE TABLE items (id serial PRIMARY KEY, loc text, lastmod date)")
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO items (loc, lastmod) VALUES (%s, %s)",
                [(f"https://shop.test/pg/{n}", "2026-11-02") for n in range(ROWS)],
            )
    url = postgres_server.url.replace("@127.0.0.1:", f"@{HOST_LOOPBACK}:")
    command = _generate_command(job_spec, "--database-url", url, "--out", "/out")
    account = cluster_api.account
    running = start(
        job_spec, built.image, {}, account, extra_mounts={out_dir: "/out"}, command=command
    )
    container.append(running)
    assert running.wait(120) == 0, running.logs()
    assert _urls_in(out_dir) == [f"https://shop.test/pg/{n}" for n in range(ROWS)]


def _processed_images(server: S3Server, bucket: str) -> Minio:
    client = server.client()
    client.make_bucket(bucket_name=bucket)
    for n in range(3):
        data = f"image {n}".encode()
        name = hashlib.sha256(data).hexdigest()
        client.put_object(
            bucket_name=bucket, object_name=name, data=io.BytesIO(data), length=len(data)
        )
    return client


def _generations(client: Minio) -> list[str]:
    return sorted(b.name for b in client.list_buckets() if is_generation(b.name))


def _publish(
    built: Build, job_spec: PodContainer, server: S3Server, cluster_api: ClusterApi
) -> Running:
    """The CronJob's own command, with the kubelet's KUBERNETES_SERVICE_* and token files."""
    overrides = {
        **_storage(server),
        "KUBERNETES_SERVICE_HOST": HOST_LOOPBACK,
        "KUBERNETES_SERVICE_PORT": str(cluster_api.port),
    }
    return start(job_spec, built.image, overrides, account=cluster_api.account)


def test_publish_switches_the_ingress(
    built: Build,
    job_spec: PodContainer,
    own_s3_server: S3Server,
    cluster_api: ClusterApi,
    container: list[Running],
) -> None:
    client = _processed_images(own_s3_server, job_spec.env()["PROCESSED_BUCKET"])
    running = _publish(built, job_spec, own_s3_server, cluster_api)
    container.append(running)
    assert running.wait(120) == 0, running.logs()
    [generation] = _generations(client)
    assert cluster_api.fake.live == generation
    index = client.get_object(bucket_name=generation, object_name="sitemap.xml").read().decode()
    assert "sitemap-00001.xml.gz" in index
    # Read-only root: the process wrote nothing outside its emptyDirs.
    assert running.written() == []


def test_sigterm_during_publish_leaves_the_ingress_alone(
    built: Build,
    job_spec: PodContainer,
    own_s3_server: S3Server,
    cluster_api: ClusterApi,
    container: list[Running],
) -> None:
    """Stopped while it waits to switch the Ingress: exit non-zero with one line, no switch.

    The API stand-in holds every request after the job's first read, so the job is stopped
    after it created and filled its bucket and before any switch; the next publish then
    removes the stopped run's bucket as an orphan, as after a crash.
    """
    fake = cluster_api.fake
    client = _processed_images(own_s3_server, job_spec.env()["PROCESSED_BUCKET"])
    fake.hold_after = 1  # the next read (before the switch) waits until released
    running = _publish(built, job_spec, own_s3_server, cluster_api)
    container.append(running)
    deadline = time.monotonic() + 120
    while not _generations(client):
        assert time.monotonic() < deadline, running.logs()
        time.sleep(0.05)
    stopped = _generations(client)
    code, _ = running.stop()
    fake.hold_after = None
    fake.released.set()
    assert code == EXIT_CODE, running.logs()
    assert running.stderr_lines()[-1] == STOPPED_LINE
    assert "Traceback" not in running.logs()
    assert fake.live is None
    assert all(verb == "get" for verb, _ in fake.requests)
    again = _publish(built, job_spec, own_s3_server, cluster_api)
    container.append(again)
    assert again.wait(120) == 0, again.logs()
    [live] = _generations(client)
    assert fake.live == live
    assert live not in stopped
