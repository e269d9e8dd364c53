"""Named sections: one family of files per query, one index over all, limits per file."""

from __future__ import annotations

import gzip
import json
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from service.sitemaps.errors import SitemapError
from service.sitemaps.sections import Section, from_json, from_options
from service.sitemaps.sql_source import SqlRows
from service.sitemaps.writer import INDEX_NAME, Limits, write_sections
from tests.sitemaps.test_cli import BASE, cli, one_error_line

NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


def catalog(path: Path, products: int = 120, articles: int = 30) -> str:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE products (id INTEGER PRIMARY KEY, loc TEXT, day TEXT)")
        db.execute("CREATE TABLE articles (id INTEGER PRIMARY KEY, loc TEXT, day TEXT)")
        db.executemany(
            "INSERT INTO products (loc, day) VALUES (?, ?)",
            [(f"https://shop.example.test/p/{i}", "2026-11-01") for i in range(products)],
        )
        db.executemany(
            "INSERT INTO articles (loc, day) VALUES (?, ?)",
            [(f"https://shop.example.test/a/{i}", "2026-11-02") for i in range(articles)],
        )
    db.close()
    return f"sqlite:///{path}"


PRODUCTS = "SELECT loc, day FROM products ORDER BY id"
ARTICLES = "SELECT loc, day FROM articles ORDER BY id"


def index_names(out: Path) -> list[str]:
    root = ET.fromstring((out / INDEX_NAME).read_bytes())
    return [(loc.text or "").rsplit("/", 1)[-1] for loc in root.iter(f"{NS}loc")]


def locs(path: Path) -> list[str]:
    root = ET.fromstring(gzip.decompress(path.read_bytes()))
    return [loc.text or "" for loc in root.iter(f"{NS}loc")]


def test_each_section_has_its_own_files_under_one_index(tmp_path):
    url = catalog(tmp_path / "catalog.db")
    sections = [
        Section("products", SqlRows(url, PRODUCTS, batch_size=10)),
        Section("articles", SqlRows(url, ARTICLES, batch_size=10)),
        Section("empty", [[]]),
    ]
    generation = write_sections(sections, tmp_path / "out", BASE, Limits(max_urls=50))
    names = [
        "sitemap-products-00001.xml.gz",
        "sitemap-products-00002.xml.gz",
        "sitemap-products-00003.xml.gz",
        "sitemap-articles-00001.xml.gz",
    ]
    assert [f.name for f in generation.files] == [*names, INDEX_NAME]
    assert [f.urls for f in generation.files[:-1]] == [50, 50, 20, 30]
    assert index_names(tmp_path / "out") == names
    assert locs(tmp_path / "out" / names[3])[0] == "https://shop.example.test/a/0"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([*names, INDEX_NAME])


def test_a_split_sqlite_section_keeps_its_name(tmp_path):
    """The two-process reader of a SQLite file runs per section, and its files carry the name."""
    url = catalog(tmp_path / "catalog.db", products=3_000)
    sections = [Section("products", SqlRows(url, PRODUCTS, batch_size=10))]
    slow = write_sections(sections, tmp_path / "one", BASE, Limits(max_urls=50), parallel=False)
    fast = write_sections(sections, tmp_path / "two", BASE, Limits(max_urls=50))
    assert [f.name for f in fast.files] == [f.name for f in slow.files]
    assert all(f.name.startswith("sitemap-products-") for f in fast.files[:-1])
    for a, b in zip(fast.files[:-1], slow.files[:-1], strict=True):
        assert gzip.decompress(a.path.read_bytes()) == gzip.decompress(b.path.read_bytes())
    assert not list((tmp_path / "two").glob("part-*"))


def test_the_index_limit_counts_every_sections_files(tmp_path, monkeypatch):
    monkeypatch.setattr("service.sitemaps.writer.MAX_INDEX_ENTRIES", 3)
    rows = [[(f"https://shop.example.test/{i}", None) for i in range(4)]]
    sections = [Section("a", rows), Section("b", rows)]
    with pytest.raises(SitemapError, match="exceed the index limit"):
        write_sections(sections, tmp_path, BASE, Limits(max_urls=2))


def test_section_options_and_environment_are_validated():
    assert [(q.name, q.query) for q in from_options(["a=SELECT 1, 2", "b-2= SELECT x=1, 2 "])] == [
        ("a", "SELECT 1, 2"),
        ("b-2", "SELECT x=1, 2"),
    ]
    document = json.dumps([{"name": "products", "query": PRODUCTS}])
    assert [q.name for q in from_json(document)] == ["products"]
    for bad, message in [
        (["nameless"], "expected NAME=QUERY"),
        (["a="], "expected NAME=QUERY"),
        (["Big=SELECT 1"], "bad section name 'Big'"),
        (["-a=SELECT 1"], "bad section name"),
        ([f"{'a' * 41}=SELECT 1"], "bad section name"),
        (["a/b=SELECT 1"], "bad section name"),
        (["a=SELECT 1", "a=SELECT 2"], "'a' appears twice"),
    ]:
        with pytest.raises(SitemapError, match=message):
            from_options(bad)
    for text, message in [
        ("[{", "not JSON"),
        ("{}", "non-empty array"),
        ("[]", "non-empty array"),
        ('["a"]', "item 1 is not an object"),
        ('[{"query": "SELECT 1"}]', "item 1 has no name"),
        ('[{"name": "a"}]', "item 1 \\('a'\\) has no query"),
        ('[{"name": "a", "query": "  "}]', "has no query"),
        ('[{"name": "a b", "query": "SELECT 1"}]', "bad section name 'a b' in SITEMAP_SECTIONS"),
        ('[{"name": "a", "query": "q", "priority": 1}]', "unknown keys \\['priority'\\]"),
        ('[{"name": "a", "query": "q"}, {"name": "a", "query": "r"}]', "appears twice"),
    ]:
        with pytest.raises(SitemapError, match=message) as caught:
            from_json(text)
        assert "\n" not in str(caught.value)


def test_cli_sections_from_flags_and_from_the_environment(tmp_path):
    url = catalog(tmp_path / "catalog.db")
    by_flags = cli(
        "generate",
        "--database-url",
        url,
        "--section",
        f"products={PRODUCTS}",
        "--section",
        f"articles={ARTICLES}",
        "--base-url",
        BASE,
        "--out",
        str(tmp_path / "flags"),
    )
    assert by_flags.returncode == 0, by_flags.stderr
    sections = json.dumps(
        [{"name": "products", "query": PRODUCTS}, {"name": "articles", "query": ARTICLES}]
    )
    env = {"SITEMAP_SECTIONS": sections, "SITEMAP_DATABASE_URL": url, "SITEMAP_BASE_URL": BASE}
    by_env = cli("generate", "--out", str(tmp_path / "env"), env=env)
    assert by_env.returncode == 0, by_env.stderr
    expected = ["sitemap-products-00001.xml.gz", "sitemap-articles-00001.xml.gz"]
    assert index_names(tmp_path / "flags") == index_names(tmp_path / "env") == expected
    assert len(locs(tmp_path / "env" / expected[0])) == 120


def test_cli_refuses_mixed_and_bad_sections(tmp_path):
    url = catalog(tmp_path / "catalog.db")
    common = ["--database-url", url, "--base-url", BASE, "--out", str(tmp_path / "out")]
    mixed = cli("generate", *common, "--query", PRODUCTS, "--section", f"a={ARTICLES}")
    assert "--query or --section, not both" in one_error_line(mixed)
    both = {"SITEMAP_QUERY": PRODUCTS, "SITEMAP_SECTIONS": '[{"name": "a", "query": "q"}]'}
    assert "SITEMAP_QUERY or SITEMAP_SECTIONS, not both" in one_error_line(
        cli("generate", *common, env=both)
    )
    bad = cli("generate", *common, env={"SITEMAP_SECTIONS": "[{'name': 'a'}]"})
    assert "bad SITEMAP_SECTIONS: not JSON" in one_error_line(bad)
    wrong = cli("generate", *common, "--section", "products=SELECT nope FROM nowhere")
    assert "bad query" in one_error_line(wrong)


def test_publish_checks_sections_before_contacting_anything(tmp_path):
    env = {"SITEMAP_SECTIONS": "[", "KUBECONFIG": str(tmp_path / "none"), "HOME": str(tmp_path)}
    line = one_error_line(cli("publish", "--base-url", BASE, env=env))
    assert "bad SITEMAP_SECTIONS: not JSON" in line
