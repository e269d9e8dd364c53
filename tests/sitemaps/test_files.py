"""File rules: the 50,000 URL / 50 MB split, escaping, W3C lastmod, well-formed gzip output."""

from __future__ import annotations

import gzip
import xml.etree.ElementTree as ET
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from service.sitemaps.errors import SitemapError
from service.sitemaps.writer import INDEX_NAME, EmptySourceError, Limits, write_sitemaps

NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
BASE = "http://sitemaps.example.test/sitemaps"


def urls_of(path: Path) -> list[tuple[str, str | None]]:
    root = ET.fromstring(gzip.decompress(path.read_bytes()))
    assert root.tag == f"{NS}urlset"
    return [
        (url.findtext(f"{NS}loc") or "", url.findtext(f"{NS}lastmod"))
        for url in root.iter(f"{NS}url")
    ]


def index_of(out: Path) -> list[str]:
    root = ET.fromstring((out / INDEX_NAME).read_bytes())
    assert root.tag == f"{NS}sitemapindex"
    return [loc.text or "" for loc in root.iter(f"{NS}loc")]


def rows(count: int, start: int = 0) -> list[tuple[str, str]]:
    return [
        (f"https://img.example.test/processed/{i:064x}", "2026-11-22T10:15:00+00:00")
        for i in range(start, start + count)
    ]


def batched(items: list[tuple[str, object]], size: int) -> list[list[tuple[str, object]]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@pytest.mark.parametrize(("max_urls", "batch"), [(10, 3), (10, 10), (10, 25), (7, 100)])
def test_new_file_at_the_url_limit(tmp_path, max_urls, batch):
    generation = write_sitemaps(batched(rows(53), batch), tmp_path, BASE, Limits(max_urls=max_urls))
    files = [f for f in generation.files if f.name != INDEX_NAME]
    assert [f.urls for f in files] == [max_urls] * (53 // max_urls) + (
        [53 % max_urls] if 53 % max_urls else []
    )
    assert sum(len(urls_of(f.path)) for f in files) == 53
    assert [u for f in files for u, _ in urls_of(f.path)] == [u for u, _ in rows(53)]
    assert index_of(tmp_path) == [f"{BASE}/{f.name}" for f in files]


def test_new_file_at_the_byte_limit(tmp_path):
    limit = 2_000
    generation = write_sitemaps(
        batched(rows(40), 9), tmp_path, BASE, Limits(max_urls=1000, max_bytes=limit)
    )
    files = [f for f in generation.files if f.name != INDEX_NAME]
    assert len(files) > 1
    for file in files:
        raw = gzip.decompress(file.path.read_bytes())
        assert len(raw) <= limit
        ET.fromstring(raw)
    # each file is full: the next URL would not have fitted
    entry = len(gzip.decompress(files[0].path.read_bytes()).splitlines()[2]) + 1
    assert all(len(gzip.decompress(f.path.read_bytes())) > limit - entry for f in files[:-1])
    assert sum(f.urls for f in files) == 40


def test_real_limit_50001_urls_make_two_files(tmp_path):
    generation = write_sitemaps(batched(rows(50_001), 10_000), tmp_path, BASE)
    files = [f for f in generation.files if f.name != INDEX_NAME]
    assert [f.urls for f in files] == [50_000, 1]
    assert len(urls_of(files[0].path)) == 50_000
    assert urls_of(files[1].path)[0][0].endswith(f"{50_000:064x}")
    assert len(index_of(tmp_path)) == 2
    assert gzip.decompress(files[0].path.read_bytes()).__len__() <= 50 * 1024 * 1024


NASTY = [
    ("https://shop.example.test/a?b=1&c=2", "https://shop.example.test/a?b=1&c=2"),
    ("https://shop.example.test/<tag>", "https://shop.example.test/<tag>"),
    ('https://shop.example.test/it\'s/"quoted"', 'https://shop.example.test/it\'s/"quoted"'),
    ("https://bücher.example.test/straße", "https://xn--bcher-kva.example.test/stra%C3%9Fe"),
    ("https://shop.example.test/日本?q=ü", "https://shop.example.test/%E6%97%A5%E6%9C%AC?q=%C3%BC"),
    ("https://shop.example.test/100%", "https://shop.example.test/100%25"),
    ("https://shop.example.test/a%20b%2Fc", "https://shop.example.test/a%20b%2Fc"),
    ("https://shop.example.test/a b", "https://shop.example.test/a%20b"),
]


@pytest.mark.parametrize("mixed", [False, True])
def test_nasty_urls_are_escaped_and_round_trip(tmp_path, mixed):
    source = [(loc, "2026-01-02") for loc, _ in NASTY]
    if mixed:  # clean ASCII batches take a different path than dirty ones
        source = [(loc, "2026-01-02") for loc, _ in NASTY[:3]]
    write_sitemaps([source], tmp_path, BASE)
    raw = gzip.decompress((tmp_path / "sitemap-00001.xml.gz").read_bytes())
    assert raw.isascii()
    expected = [want for _, want in NASTY][: len(source)]
    assert [loc for loc, _ in urls_of(tmp_path / "sitemap-00001.xml.gz")] == expected
    assert b"&amp;" in raw
    assert b"&lt;" in raw


def test_lastmod_in_w3c_datetime(tmp_path):
    plus_two = timezone(timedelta(hours=2))
    source = [
        ("https://a.example.test/1", datetime(2026, 1, 2, 3, 4, 5, tzinfo=plus_two)),
        ("https://a.example.test/2", datetime(2026, 1, 2, 3, 4, 5, 678)),
        ("https://a.example.test/3", date(2026, 1, 2)),
        ("https://a.example.test/4", "2026-01-02 03:04:05"),
        ("https://a.example.test/5", None),
        ("https://a.example.test/6", "2026-01-02T03:04:05Z"),
    ]
    write_sitemaps([source], tmp_path, BASE)
    assert [m for _, m in urls_of(tmp_path / "sitemap-00001.xml.gz")] == [
        "2026-01-02T03:04:05+02:00",
        "2026-01-02T03:04:05+00:00",
        "2026-01-02",
        "2026-01-02T03:04:05+00:00",
        None,
        "2026-01-02T03:04:05Z",
    ]


def test_uniform_batches_are_still_checked(tmp_path):
    good = [(f"https://a.example.test/{i}", "2026-01-02T03:04:05+00:00") for i in range(5)]
    bad = [*good, ("https://a.example.test/x", "2026-01-02T03:04:05+0A:00")]
    with pytest.raises(SitemapError, match="lastmod"):
        write_sitemaps([bad], tmp_path, BASE)
    with pytest.raises(SitemapError, match="not an absolute"):
        write_sitemaps([[*good, ("/relative", None)]], tmp_path, BASE)


def test_an_empty_source_writes_nothing(tmp_path):
    """An empty <urlset> or <sitemapindex> is invalid under the sitemaps.org schemas."""
    (tmp_path / "sitemap-00007.xml.gz").write_bytes(b"stale")
    with pytest.raises(EmptySourceError, match="no URLs"):
        write_sitemaps([[]], tmp_path, BASE)
    assert list(tmp_path.iterdir()) == []
