"""/robots.txt over real HTTP: /processed/ open to crawlers, and the sitemap index named."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any
from urllib.robotparser import RobotFileParser

import pytest
from api_support import Api, api_env, serve
from test_api_startup import FACTORY, GUNICORN, stopped_with_one_line

INDEX_URL = "https://sitemaps.example.com/sitemaps/sitemap.xml"


@pytest.fixture(scope="module")
def api_with_sitemap(s3_server: Any) -> Iterator[Api]:
    yield from serve(api_env(s3_server.env(), SITEMAP_INDEX_URL=INDEX_URL))


def parsed(text: str) -> RobotFileParser:
    parser = RobotFileParser()
    parser.parse(text.splitlines())
    return parser


def test_names_the_sitemap_index_the_stack_configures(api_with_sitemap: Api) -> None:
    """A sitemap on another host may list this host's URLs only if this file names it."""
    response = api_with_sitemap.get("/robots.txt")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    text = response.data.decode()
    assert f"\nSitemap: {INDEX_URL}\n" in text
    assert parsed(text).site_maps() == [INDEX_URL]


def test_processed_images_may_be_crawled_and_nothing_else(api_with_sitemap: Api) -> None:
    rules = parsed(api_with_sitemap.get("/robots.txt").data.decode())
    assert rules.can_fetch("Googlebot", "/processed/" + "a" * 64)
    assert rules.can_fetch("*", "/processed/")
    for private in ("/incoming/" + "a" * 64, "/", "/openapi.json", "/metrics"):
        assert not rules.can_fetch("Googlebot", private), private


def test_without_a_sitemap_there_is_no_sitemap_line(api: Api) -> None:
    response = api.get("/robots.txt")
    assert response.status == 200
    text = response.data.decode()
    assert "Sitemap:" not in text
    assert parsed(text).can_fetch("*", "/processed/" + "b" * 64)


def test_head_and_the_cache_header(api_with_sitemap: Api) -> None:
    response = api_with_sitemap.request("HEAD", "/robots.txt")
    assert response.status == 200
    assert "max-age=3600" in response.headers["Cache-Control"]


BAD_URLS = [
    "sitemaps.example.com/sitemap.xml",
    "ftp://sitemaps.example.com/sitemap.xml",
    "https://",
    "https:///sitemap.xml",
    "https://sitemaps.example.com/a b.xml",
    # A newline would let the setting write rules of its own into the file.
    "https://sitemaps.example.com/sitemap.xml\nDisallow: /processed/",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_bad_index_url_stops_the_factory_with_one_line(s3_server: Any, url: str) -> None:
    code = "from service.app import create_app; create_app()"
    settings = {**s3_server.env(), "SITEMAP_INDEX_URL": url}
    assert stopped_with_one_line([sys.executable, "-c", code], settings, "SITEMAP_INDEX_URL") == 2


def test_a_bad_index_url_stops_gunicorn_with_one_line(s3_server: Any) -> None:
    settings = {**s3_server.env(), "SITEMAP_INDEX_URL": "sitemaps.example.com"}
    command = [GUNICORN, "--config", "python:service.gunicorn_conf", FACTORY]
    assert stopped_with_one_line(command, settings, "SITEMAP_INDEX_URL") != 0
