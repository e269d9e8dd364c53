"""A crawler's view: public URLs fetched through the test's nginx, never off loopback."""

from __future__ import annotations

import gzip
import random
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import urllib3

SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
INDEX_TYPES = ("application/xml", "text/xml")
SITEMAP_TYPES = ("application/gzip", "application/x-gzip")
MAX_REDIRECTS = 5
# Above this many URLs the crawl fetches a random sample of SAMPLE_SIZE of them.
SAMPLE_ABOVE = 3000
SAMPLE_SIZE = 2000


@dataclass(frozen=True)
class Fetched:
    url: str
    status: int
    content_type: str
    body: bytes
    location: str | None


@dataclass
class LoopbackWeb:
    """Resolves every host an Ingress serves to nginx on loopback; any other host is an error.

    http URLs go to nginx's plain port with the URL's Host; https URLs to its TLS port with
    the host as SNI, verified against the CA the test made for that host.
    """

    hosts: set[str]
    http_port: int
    https_port: int
    authorities: dict[str, Path] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        timeout = urllib3.Timeout(connect=5, read=30)
        self._plain = urllib3.HTTPConnectionPool(
            "127.0.0.1", self.http_port, timeout=timeout, retries=False, maxsize=4
        )
        self._tls: dict[str, urllib3.HTTPSConnectionPool] = {}
        self._timeout = timeout

    def _pool(self, scheme: str, host: str) -> urllib3.HTTPConnectionPool:
        if scheme == "http":
            return self._plain
        assert host in self.authorities, f"https://{host} but no Ingress declares TLS for it"
        if host not in self._tls:
            self._tls[host] = urllib3.HTTPSConnectionPool(
                "127.0.0.1",
                self.https_port,
                timeout=self._timeout,
                retries=False,
                maxsize=4,
                cert_reqs="CERT_REQUIRED",
                ca_certs=str(self.authorities[host]),
                server_hostname=host,
                assert_hostname=host,
            )
        return self._tls[host]

    def request(self, method: str, url: str, **kwargs: Any) -> Fetched:
        """One request, no redirects followed."""
        parts = urlsplit(url)
        assert parts.scheme in ("http", "https"), url
        assert parts.hostname in self.hosts, f"{url}: no Ingress serves host {parts.hostname}"
        assert parts.port is None, f"{url}: public URLs use the scheme's port"
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"Host": parts.hostname, **kwargs.pop("headers", {})}
        response = self._pool(parts.scheme, parts.hostname).urlopen(
            method, path, headers=headers, redirect=False, **kwargs
        )
        self.fetched.append(url)
        return Fetched(
            url=url,
            status=response.status,
            content_type=response.headers.get("Content-Type", ""),
            body=response.data,
            location=response.headers.get("Location"),
        )

    def get(self, url: str) -> Fetched:
        """GET, following redirects as a crawler does (308 keeps the method)."""
        return self.follow("GET", url)

    def follow(self, method: str, url: str, **kwargs: Any) -> Fetched:
        for _ in range(MAX_REDIRECTS):
            fetched = self.request(method, url, **kwargs)
            if fetched.status not in (301, 302, 303, 307, 308) or not fetched.location:
                return fetched
            url = urljoin(url, fetched.location)
        raise AssertionError(f"more than {MAX_REDIRECTS} redirects from {url}")


def _locs(document: bytes, root_tag: str, url: str) -> list[str]:
    root = ET.fromstring(document)
    assert root.tag == SITEMAP_NS + root_tag, f"{url}: root element {root.tag}"
    return [str(loc.text).strip() for loc in root.iter(SITEMAP_NS + "loc")]


def require(fetched: Fetched, content_types: tuple[str, ...]) -> None:
    """200 with one of `content_types`, else an assertion naming the URL."""
    assert fetched.status == 200, f"{fetched.url}: HTTP {fetched.status} {fetched.body[:200]!r}"
    media_type = fetched.content_type.split(";")[0].strip()
    assert media_type in content_types or any(
        t.endswith("/") and media_type.startswith(t) for t in content_types
    ), f"{fetched.url}: Content-Type {fetched.content_type!r}, expected {content_types}"


def robots_sitemaps(web: LoopbackWeb, origin: str) -> list[str]:
    """The Sitemap: lines of `<origin>/robots.txt`, which must answer 200 text/plain."""
    fetched = web.get(f"{origin}/robots.txt")
    require(fetched, ("text/plain",))
    return [
        line.split(":", 1)[1].strip()
        for line in fetched.body.decode().splitlines()
        if line.lower().startswith("sitemap:")
    ]


@dataclass
class Crawl:
    """What one crawl from a sitemap index found."""

    sitemaps: list[str]
    locs: list[str]
    checked: list[str]


def crawl(web: LoopbackWeb, index_url: str, seed: int = 12) -> Crawl:
    """The index, every sitemap it lists, and every <loc> in them (a random sample if many)."""
    index = web.get(index_url)
    require(index, INDEX_TYPES)
    sitemaps = _locs(index.body, "sitemapindex", index_url)
    assert sitemaps, f"{index_url} lists no sitemap"
    index_dir = index_url.rsplit("/", 1)[0] + "/"
    locs: list[str] = []
    for sitemap in sitemaps:
        # A sitemap index may list only sitemaps of its own host and directory.
        assert sitemap.startswith(index_dir), f"{sitemap} is outside {index_dir}"
        fetched = web.get(sitemap)
        require(fetched, SITEMAP_TYPES)
        locs += _locs(gzip.decompress(fetched.body), "urlset", sitemap)
    checked = (
        random.Random(seed).sample(locs, SAMPLE_SIZE) if len(locs) > SAMPLE_ABOVE else list(locs)
    )
    for loc in checked:
        require(web.get(loc), ("image/",))
    # The sitemaps protocol accepts a URL of another host only if that host's robots.txt
    # names the sitemap.
    index_origin = "{0.scheme}://{0.netloc}".format(urlsplit(index_url))
    for origin in sorted({"{0.scheme}://{0.netloc}".format(urlsplit(loc)) for loc in locs}):
        if origin != index_origin:
            assert index_url in robots_sitemaps(web, origin), (
                f"{origin}/robots.txt does not name {index_url}"
            )
    return Crawl(sitemaps=sitemaps, locs=locs, checked=checked)
