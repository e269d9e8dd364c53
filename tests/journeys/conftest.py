"""Fixtures of the journeys: nginx present, and an S3 server that answers path-style like MinIO."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nginx_server import missing_reason

from tests.conftest import S3Server
from tests.servers import free_port

# The Pulumi program tests' renderer and stack variants (stack_render, stack_variants).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infra"))


@pytest.fixture(scope="session")
def nginx_available() -> None:
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def path_style_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """moto's S3 server answering path-style whatever the Host, as MinIO does without
    MINIO_DOMAIN: nginx passes the sitemaps host on, and moto would read its first label
    as a bucket name (virtual-hosted style) unless told to ignore it."""
    monkeypatch.setenv("S3_IGNORE_SUBDOMAIN_BUCKETNAME", "true")
    server = S3Server(port=free_port())
    server.start()
    yield server
    server.stop()
