"""Every file the job writes validates against the official sitemaps.org 0.9 schemas.

The urlset schema (sitemap.xsd) comes from npm's pinned `sitemap` package, fetched by
`make xsd` (part of `make test`); libxml2 (lxml) validates. The official siteindex.xsd ships
in no package this project can fetch, so it is kept in tests/sitemaps/xsd/ with its licence;
the index is validated against it, and its loc and lastmod values are also checked against
the official types of sitemap.xsd.
"""

from __future__ import annotations

import gzip
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from lxml import etree

from service.sitemaps.errors import SitemapError
from service.sitemaps.sections import Section
from service.sitemaps.writer import INDEX_NAME, Generation, Limits, write_sections, write_sitemaps
from tests.sitemaps.schemas import assert_valid, kept_schema, schema
from tests.sitemaps.test_files import NASTY

BASE = "https://sitemaps.example.test/sitemaps"
NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


def urlset_schema() -> etree.XMLSchema:
    return schema("sitemap.xsd", "run `make xsd` (needs npm) to fetch it")


def assert_generation_valid(generation: Generation) -> None:
    xsd = urlset_schema()
    for file in generation.files[:-1]:
        assert_valid(gzip.decompress(file.path.read_bytes()), xsd)
    assert_index_valid(generation.index.path.read_bytes())


def assert_index_valid(index: bytes) -> None:
    """The index's values against the official types, by way of a urlset holding the same ones."""
    root = ET.fromstring(index)
    assert root.tag == f"{NS}sitemapindex"
    assert len(root) >= 1
    entries = []
    for sitemap in root:
        assert sitemap.tag == f"{NS}sitemap"
        assert [child.tag for child in sitemap] in ([f"{NS}loc"], [f"{NS}loc", f"{NS}lastmod"])
        entries.append(ET.tostring(sitemap, encoding="unicode").replace("ns0:sitemap", "ns0:url"))
    urlset = '<ns0:urlset xmlns:ns0="http://www.sitemaps.org/schemas/sitemap/0.9">'
    assert_valid(f"{urlset}{''.join(entries)}</ns0:urlset>".encode(), urlset_schema())


def test_the_index_against_the_official_siteindex_xsd(tmp_path):
    xsd = kept_schema("siteindex.xsd")
    generation = write_sitemaps([[("https://a.example.test/page", None)]], tmp_path, BASE)
    assert_valid(generation.index.path.read_bytes(), xsd)
    sections = [
        Section(name, [[(f"https://a.example.test/{name}/{i}", None) for i in range(3)]])
        for name in ("a", "b")
    ]
    generation = write_sections(sections, tmp_path, BASE, Limits(max_urls=1))
    assert len(generation.files) == 7
    assert_valid(generation.index.path.read_bytes(), xsd)


def test_the_kept_siteindex_xsd_refuses_what_the_protocol_refuses():
    """The kept schema is the real one: a loc under 12 characters, a day that does not exist,
    a sitemap without a loc and an empty index all fail."""
    xsd = kept_schema("siteindex.xsd")
    head = b'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
    for sitemap, complaint in (
        (b"<loc>http://a.bc</loc>", "loc"),
        (b"<loc>https://a.example.test/s.xml</loc><lastmod>2026-02-30</lastmod>", "lastmod"),
        (b"<lastmod>2026-01-02</lastmod>", "loc"),
    ):
        with pytest.raises(AssertionError, match=complaint):
            assert_valid(head + b"<sitemap>" + sitemap + b"</sitemap></sitemapindex>", xsd)
    with pytest.raises(AssertionError, match="sitemapindex"):
        assert_valid(head + b"</sitemapindex>", xsd)


def test_nasty_urls_and_every_lastmod_form(tmp_path):
    plus_two = timezone(timedelta(hours=2))
    lastmods = [
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=plus_two),
        datetime(2026, 1, 2, 3, 4, 5, 678),
        datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC),
        date(2026, 1, 2),
        "2026-01-02",
        "2026-01-02 03:04:05",
        "2026-01-02T03:04:05Z",
        "2026-01-02T03:04:05.25+01:00",
        "2026-01-02T03:04Z",  # W3C allows minutes without seconds; xsd:dateTime does not
        "2026-01-02T03:04+05:30",
        None,
        "",
    ]
    rows = [(loc, lastmods[i % len(lastmods)]) for i, (loc, _) in enumerate(NASTY * 3)]
    assert_generation_valid(write_sitemaps([rows], tmp_path, BASE))


@pytest.mark.parametrize(
    "lastmod", ["2026-01-02T03:04Z", "2026-01-02T03:04+05:30", "2026-11-22T10:15:00.5Z"]
)
def test_uniform_batches_of_each_w3c_shape(tmp_path, lastmod):
    """Uniform batches take the fast path; each W3C shape must still come out schema-valid."""
    rows = [(f"https://shop.example.test/p/{i}", lastmod) for i in range(100)]
    assert_generation_valid(write_sitemaps([rows], tmp_path, BASE))


@pytest.mark.parametrize(
    "lastmod",
    [
        "2026-13-02",
        "2026-00-10",
        "2026-02-30",
        "2026-01-32",
        "2026-01-02T24:00:00Z",
        "2026-01-02T03:60Z",
    ],
)
@pytest.mark.parametrize("uniform", [True, False])
def test_impossible_dates_are_refused(tmp_path, lastmod, uniform):
    """Digits in the right places do not make a date: the schema's types check the calendar."""
    rows = [(f"https://shop.example.test/p/{i}", lastmod) for i in range(50)]
    if not uniform:
        rows[0] = (rows[0][0], datetime(2026, 1, 2, tzinfo=UTC))
    with pytest.raises(SitemapError, match="lastmod"):
        write_sitemaps([rows], tmp_path, BASE)


@pytest.mark.parametrize("loc", ["http://a.bc", "https://a.example.test/" + "x" * 2026])
def test_locs_outside_the_schemas_length_bounds_are_refused(tmp_path, loc):
    assert len(loc) in (11, 2049)
    with pytest.raises(SitemapError, match="characters"):
        write_sitemaps([[(loc, None)]], tmp_path, BASE)


def test_split_files_and_sections_validate(tmp_path):
    rows = [(f"https://shop.example.test/p/{i}?a=1&b=2", "2026-11-22") for i in range(400)]
    sections = [
        Section("products", [rows[i : i + 30] for i in range(0, 400, 30)]),
        Section("articles", [rows[:7]]),
    ]
    generation = write_sections(sections, tmp_path, BASE, Limits(max_urls=100, max_bytes=4_000))
    assert len(generation.files) > 6
    assert_generation_valid(generation)
    assert (tmp_path / INDEX_NAME).is_file()


def test_postgres_column_types_validate(postgres_server, tmp_path):
    from service.sitemaps.sql_source import SqlRows

    query = (
        "SELECT 'https://shop.example.test/p/' || n, CASE n % 4 "
        "WHEN 0 THEN NULL "
        "WHEN 1 THEN (DATE '2026-01-01' + n)::text "
        "ELSE to_char(TIMESTAMPTZ '2026-01-01 00:00:00+00' + n * INTERVAL '1 minute', "
        "'YYYY-MM-DD\"T\"HH24:MI:SSOF:00') END FROM generate_series(1, 500) AS n"
    )
    typed = (
        "SELECT 'https://shop.example.test/q/' || n, CASE n % 3 WHEN 0 THEN NULL ELSE "
        "TIMESTAMP '2026-01-01 00:00:00' + n * INTERVAL '1 second' END "
        "FROM generate_series(1, 100) AS n"
    )
    dated = "SELECT 'https://shop.example.test/d/' || n, DATE '2026-01-01' + n FROM generate_series(1, 100) AS n"
    zoned = "SELECT 'https://shop.example.test/z/' || n, now() FROM generate_series(1, 100) AS n"
    url = postgres_server.url
    sections = [
        Section(name, SqlRows(url, q))
        for name, q in (("text", query), ("ts", typed), ("date", dated), ("tz", zoned))
    ]
    assert_generation_valid(write_sections(sections, tmp_path, BASE))


def test_the_published_bucket_source_validates(s3_server, tmp_path):
    import io

    from service.settings import StorageSettings
    from service.sitemaps import storage
    from service.sitemaps.bucket_source import bucket_batches

    client = storage.connect(StorageSettings.from_env(s3_server.env()))
    storage.create_bucket(client, "sitemap-schema-images")
    for n in range(5):
        client.put_object(
            bucket_name="sitemap-schema-images",
            object_name=f"{n:064x}",
            data=io.BytesIO(b"x"),
            length=1,
        )
    batches = bucket_batches(client, "sitemap-schema-images", "https://images.example.test")
    assert_generation_valid(write_sitemaps(batches, tmp_path, BASE))


def test_an_invalid_document_is_caught():
    """The validator is real: a urlset with a relative loc and a bad lastmod fails."""
    document = (
        b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<url><loc>https://a.example.test/</loc><lastmod>2026-01-02T03:04Z</lastmod></url>"
        b"</urlset>"
    )
    with pytest.raises(AssertionError, match="lastmod"):
        assert_valid(document, urlset_schema())


@pytest.mark.parametrize("where", [0, 1, 500, 999])
def test_a_long_loc_is_found_anywhere_in_a_batch(tmp_path, where):
    locs = [f"https://shop.example.test/{i}" for i in range(1_000)]
    fine = [*locs]
    fine[where] = "https://a.example.test/" + "y" * (2048 - 23)
    write_sitemaps([[(loc, None) for loc in fine]], tmp_path, BASE)
    locs[where] = "https://a.example.test/" + "y" * (2049 - 23)
    with pytest.raises(SitemapError, match="2,049 characters"):
        write_sitemaps([[(loc, None) for loc in locs]], tmp_path, BASE)
