"""Publishing onto an HTTPRoute: the real moto S3 server and the stand-in API server and Gateway
controller of tests/sitemaps/gateway_api.py (no real Gateway controller runs here)."""

from __future__ import annotations

import io

import pytest

from service.sitemaps import storage
from service.sitemaps.errors import SitemapError
from service.sitemaps.publisher import Publisher
from tests.sitemaps.gateway_api import live_label
from tests.sitemaps.test_cli import cli, one_error_line
from tests.sitemaps.test_httproute import set_prefix
from tests.sitemaps.test_publish import BASE, SMALL, assert_live_is_complete, rows


@pytest.fixture
def publisher(client, route):
    return Publisher(client, route.switch(accept_timeout=1), retain=1, workers=4)


def test_publish_switches_the_route_and_serves_the_generation(s3_server, client, publisher, route):
    assert publisher.status().live is None
    bucket = publisher.publish(rows(), BASE, limits=SMALL)
    assert (route.live, route.prefix, live_label(route.route())) == (bucket, f"/{bucket}", bucket)
    assert_live_is_complete(s3_server, route)
    assert {verb for verb, _ in route.requests} == {"get", "patch"}


def test_a_concurrent_change_is_read_again_and_retried(s3_server, client, publisher, route):
    first = publisher.publish(rows(10), BASE)
    route.before_patch = lambda fake: fake.edit(
        lambda document: document["metadata"]["labels"].update(team="web")
    )
    second = publisher.publish(rows(20), BASE)
    assert len(route.patches) == 3  # the first switch, the refused one, the retry
    assert route.live == second
    assert route.route()["metadata"]["labels"]["team"] == "web"
    assert_live_is_complete(s3_server, route)
    assert storage.generations(client) == [first, second]


@pytest.mark.parametrize("controller", ["silent", "refuse"])
def test_a_route_not_accepted_stops_before_anything_is_deleted(
    s3_server, client, publisher, route, controller
):
    first = publisher.publish(rows(10), BASE)
    second = publisher.publish(rows(20), BASE)
    route.controller = controller
    with pytest.raises(SitemapError) as caught:
        publisher.publish(rows(30), BASE)
    third = route.live
    message = str(caught.value)
    assert message.startswith("httproute 'sitemaps' in namespace 'web' ")
    assert f"it rewrites to /{third} now (was /{second})" in message
    assert message.endswith("nothing was deleted")
    assert storage.generations(client) == [first, second, third]
    assert not storage.went_live(client, str(third))


def test_rollback_switches_the_route_back(s3_server, client, publisher, route):
    publisher.publish(rows(10), BASE)
    second = publisher.publish(rows(20), BASE)
    third = publisher.publish(rows(30), BASE)
    assert publisher.status().retained == [second]
    assert publisher.rollback() == second
    assert (route.live, live_label(route.route())) == (second, second)
    assert_live_is_complete(s3_server, route)
    assert storage.generations(client) == [second, third]


def test_rollback_refuses_when_the_route_changed_under_it(s3_server, client, publisher, route):
    publisher.publish(rows(10), BASE)
    second = publisher.publish(rows(20), BASE)
    third = publisher.publish(rows(30), BASE)
    route.before_patch = lambda fake: fake.edit(lambda document: set_prefix(document, "/elsewhere"))
    with pytest.raises(
        SitemapError, match=r"^the HTTPRoute changed during the rollback; not switching$"
    ):
        publisher.rollback()
    assert route.prefix == "/elsewhere"
    assert storage.generations(client) == [second, third]
    assert not storage.claimed(client, second, storage.ROLLBACK_TARGET)


IMAGES = "httproute-images"


def env_for(route, s3_server, tmp_path, **extra: str) -> dict[str, str]:
    return {
        **s3_server.env(),
        "PROCESSED_BUCKET": IMAGES,
        "KUBECONFIG": str(route.kubeconfig(tmp_path / "kubeconfig", namespace="web")),
        "SITEMAP_BASE_URL": BASE,
        **extra,
    }


@pytest.fixture
def images(client) -> None:
    """One image in the processed bucket the bucket source lists."""
    storage.create_bucket(client, IMAGES)
    client.put_object(bucket_name=IMAGES, object_name=f"{7:064x}", data=io.BytesIO(b"x"), length=1)


def test_cli_publishes_onto_the_route_named_in_the_environment(
    s3_server, client, route, images, tmp_path
):
    env = env_for(route, s3_server, tmp_path, SITEMAP_HTTPROUTE="sitemaps")
    before = cli("status", env=env)
    assert before.returncode == 0, before.stderr
    assert "live: nothing yet: no generation has been published to this HTTPRoute" in before.stdout
    result = cli("publish", "--site-url", "http://img.example.test", env=env)
    assert result.returncode == 0, result.stderr
    assert "switched the HTTPRoute from None to" in result.stderr
    assert route.live == storage.generations(client)[-1]
    assert_live_is_complete(s3_server, route)
    after = cli("status", env=env)
    assert f"live: {route.live}" in after.stdout
    plan = cli("publish", "--dry-run", env=env)
    assert f"plan: switch httproute web/sitemaps from {route.live} to" in plan.stdout


def test_cli_not_accepted_is_one_line_and_a_failure(s3_server, client, route, images, tmp_path):
    route.controller = "silent"
    env = env_for(route, s3_server, tmp_path, SITEMAP_ACCEPT_TIMEOUT="0.5")
    line = one_error_line(cli("publish", "--httproute", "sitemaps", env=env))
    assert "was not Accepted at generation 2 within 0.5 s" in line
    assert line.endswith("nothing was deleted")
    assert storage.generations(client) == [route.live]


@pytest.mark.parametrize(
    ("args", "extra", "expected"),
    [
        (
            ["--httproute", "sitemaps"],
            {"SITEMAP_INGRESS": "sitemaps"},
            "give --ingress or --httproute (or SITEMAP_INGRESS or SITEMAP_HTTPROUTE), not both",
        ),
        (
            ["--ingress", "sitemaps", "--httproute", "sitemaps"],
            {},
            "give --ingress or --httproute",
        ),
        (["--accept-timeout", "soon"], {"SITEMAP_HTTPROUTE": "sitemaps"}, "--accept-timeout"),
        (
            [],
            {"SITEMAP_HTTPROUTE": "sitemaps", "SITEMAP_ACCEPT_TIMEOUT": "0"},
            'must be a number above 0 and at most 3600, got "0"',
        ),
        (
            [],
            {"SITEMAP_HTTPROUTE": "sitemaps", "SITEMAP_ACCEPT_TIMEOUT": "nan"},
            'must be a number above 0 and at most 3600, got "nan"',
        ),
        (["--httproute", "nope"], {}, "httproute 'nope' not found in namespace 'web'"),
        (["--httproute", " "], {}, "bad option --httproute: the name is empty"),
    ],
)
def test_cli_bad_route_options_are_one_line(s3_server, route, tmp_path, args, extra, expected):
    env = env_for(route, s3_server, tmp_path, **extra)
    line = one_error_line(cli("status", *args, env=env))
    assert expected in line
