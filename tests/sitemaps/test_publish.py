"""Publishing against the real moto S3 server process and the fake Kubernetes API."""

from __future__ import annotations

import gzip
import io
import json
import threading
import xml.etree.ElementTree as ET

import pytest
import urllib3

from service.settings import StorageSettings
from service.sitemaps import storage
from service.sitemaps.naming import is_generation
from service.sitemaps.publisher import Publisher
from service.sitemaps.sections import Section
from service.sitemaps.writer import INDEX_NAME, Limits

BASE = "http://sitemaps.example.test/sitemaps"
NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
SMALL = Limits(max_urls=40)


def rows(count: int = 100) -> list[Section]:
    """One unnamed section of `count` URLs, in batches of 30."""
    items = [
        (f"https://img.example.test/processed/{i:064x}?a=1&b=2", "2026-11-22T10:15:00Z")
        for i in range(count)
    ]
    return [Section("", [items[i : i + 30] for i in range(0, count, 30)])]


@pytest.fixture
def publisher(client, kube):
    return Publisher(client, kube.switch(), retain=1, workers=4)


def anonymous_get(s3_server, bucket: str, name: str) -> urllib3.BaseHTTPResponse:
    return urllib3.PoolManager().request(
        "GET", f"http://{s3_server.endpoint}/{bucket}/{name}", retries=False
    )


def assert_live_is_complete(s3_server, kube) -> None:
    """Every file the live index lists is fetchable anonymously, with the stored size."""
    assert is_generation(kube.live)
    index = anonymous_get(s3_server, kube.live, INDEX_NAME)
    assert index.status == 200
    locs = [loc.text or "" for loc in ET.fromstring(index.data).iter(f"{NS}loc")]
    assert locs
    assert all(loc.startswith(f"{BASE}/") for loc in locs)
    for loc in locs:
        response = anonymous_get(s3_server, kube.live, loc.rsplit("/", 1)[-1])
        assert response.status == 200
        assert int(response.headers["Content-Length"]) == len(response.data)
        ET.fromstring(gzip.decompress(response.data))


def test_publish_serves_anonymously_with_the_right_types(s3_server, client, publisher, kube):
    bucket = publisher.publish(rows(), BASE, limits=SMALL)
    assert bucket == kube.live
    assert (
        kube.ingress()["metadata"]["annotations"]["nginx.ingress.kubernetes.io/rewrite-target"]
        == f"/{bucket}/$2"
    )
    index = anonymous_get(s3_server, bucket, INDEX_NAME)
    assert index.status == 200
    assert index.headers["Content-Type"] == "application/xml"
    first = anonymous_get(s3_server, bucket, "sitemap-00001.xml.gz")
    assert first.status == 200
    assert first.headers["Content-Type"] == "application/gzip"
    assert "Content-Encoding" not in first.headers
    assert len(ET.fromstring(gzip.decompress(first.data)).findall(f"{NS}url")) == 40
    assert_live_is_complete(s3_server, kube)


def test_moto_enforces_object_policy_for_anonymous_reads(s3_server, client):
    """Anonymous GET is refused until the policy is set, so the GET above proves the policy works."""
    bucket = "sitemaps-20000101t000000z-000000-aa"
    storage.create_bucket(client, bucket)
    storage.create_bucket(client, bucket)  # repeating the step is harmless
    client.put_object(
        bucket_name=bucket,
        object_name="x.xml.gz",
        data=io.BytesIO(b"x"),
        length=1,
        content_type="application/gzip",
    )
    assert anonymous_get(s3_server, bucket, "x.xml.gz").status == 403
    storage.make_public(client, bucket)
    assert anonymous_get(s3_server, bucket, "x.xml.gz").status == 200


def test_anonymous_listing_is_not_granted(s3_server, client, publisher):
    """moto 5.2 does not enforce bucket policies on anonymous *listing* (it answers 200 with
    or without a policy unless IAM auth is switched on), so this asserts on the stored policy:
    it grants s3:GetObject on objects only, and nothing on the bucket itself (no s3:ListBucket)."""
    bucket = publisher.publish(rows(10), BASE)
    document = json.loads(client.get_bucket_policy(bucket_name=bucket))
    actions = [action for statement in document["Statement"] for action in statement["Action"]]
    resources = [res for statement in document["Statement"] for res in statement["Resource"]]
    assert actions == ["s3:GetObject"]
    assert resources == [f"arn:aws:s3:::{bucket}/*"]
    assert all(statement["Effect"] == "Allow" for statement in document["Statement"])


def test_retention_keeps_the_previous_generation_and_rollback_returns_to_it(
    s3_server, client, publisher, kube
):
    first = publisher.publish(rows(10), BASE)
    second = publisher.publish(rows(20), BASE)
    third = publisher.publish(rows(30), BASE)
    assert storage.generations(client) == [second, third]
    status = publisher.status()
    assert (status.live, status.retained, status.orphans) == (third, [second], [])
    assert first not in storage.generations(client)
    assert publisher.rollback() == second
    assert kube.live == second
    assert_live_is_complete(s3_server, kube)
    assert {verb for verb, _ in kube.requests} <= {"get", "patch"}


def test_dry_run_changes_nothing(s3_server, client, publisher, kube, capsys):
    first = publisher.publish(rows(10), BASE)
    version = kube.resource_version
    assert publisher.publish(rows(10), BASE, dry_run=True) is None
    out = capsys.readouterr().out
    assert "plan: switch ingress web/sitemaps" in out
    assert first in out
    assert storage.generations(client) == [first]
    assert kube.resource_version == version


STEPS = [
    "generate",
    "create_bucket",
    "upload",
    "make_public",
    "verify",
    "switch",
    "mark_went_live",
    "clean_up",
]


@pytest.mark.parametrize("step", STEPS)
def test_crash_after_each_step_leaves_a_complete_live_generation(
    s3_server, client, publisher, kube, monkeypatch, step
):
    publisher.publish(rows(10), BASE)
    publisher.publish(rows(20), BASE)
    original = getattr(Publisher, step)

    def crash(self, *args, **kwargs):
        original(self, *args, **kwargs)
        raise RuntimeError(f"crash after {step}")

    monkeypatch.setattr(Publisher, step, crash)
    with pytest.raises(RuntimeError, match="crash"):
        publisher.publish(rows(70), BASE, limits=SMALL)
    assert_live_is_complete(s3_server, kube)
    monkeypatch.undo()

    final = publisher.publish(rows(50), BASE, limits=SMALL)
    assert kube.live == final
    assert_live_is_complete(s3_server, kube)
    status = publisher.status()
    assert status.orphans == []
    assert status.newer == []
    assert len(status.retained) == 1
    assert storage.generations(client) == [*status.retained, final]


def test_two_racing_publishers_leave_one_live_generation(s3_server, client, kube):
    first = Publisher(client, kube.switch(), retain=1, workers=2)
    first.publish(rows(10), BASE)
    arrived = threading.Barrier(2, timeout=30)
    original = Publisher.switch

    def together(self, bucket):
        arrived.wait()  # both read the same resourceVersion, then both patch
        return original(self, bucket)

    results: dict[int, object] = {}

    def run(number: int) -> None:
        racer = Publisher(
            storage.connect(StorageSettings.from_env(s3_server.env())), kube.switch(), retain=1
        )
        try:
            results[number] = racer.publish(rows(60), BASE, limits=SMALL)
        except Exception as error:  # the loser may find its bucket cleaned away
            results[number] = error

    Publisher.switch = together
    try:
        threads = [threading.Thread(target=run, args=(n,)) for n in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        Publisher.switch = original
    winners = [r for r in results.values() if isinstance(r, str)]
    assert winners, results
    assert kube.live == max(winners)
    assert_live_is_complete(s3_server, kube)
    assert kube.live in storage.generations(client)
    assert sum(1 for verb, _ in kube.requests if verb == "patch") >= 2


def test_sections_publish_under_one_index(s3_server, client, publisher, kube):
    items = [(f"https://img.example.test/i/{i}", "2026-11-22") for i in range(50)]
    brands = [(f"https://img.example.test/b/{i}", None) for i in range(10)]
    bucket = publisher.publish(
        [Section("items", [items]), Section("brands", [brands])], BASE, limits=SMALL
    )
    assert bucket == kube.live
    assert_live_is_complete(s3_server, kube)
    index = anonymous_get(s3_server, bucket, INDEX_NAME)
    names = [
        (loc.text or "").rsplit("/", 1)[-1] for loc in ET.fromstring(index.data).iter(f"{NS}loc")
    ]
    assert names == [
        "sitemap-items-00001.xml.gz",
        "sitemap-items-00002.xml.gz",
        "sitemap-brands-00001.xml.gz",
    ]


def test_an_empty_source_publishes_nothing_and_keeps_the_live_generation(
    s3_server, client, publisher, kube
):
    first = publisher.publish(rows(10), BASE)
    version = kube.resource_version
    assert publisher.publish([Section("", [[]])], BASE) is None
    assert kube.live == first
    assert kube.resource_version == version
    assert storage.generations(client) == [first]
