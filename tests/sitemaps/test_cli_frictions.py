"""The sitemap CLI as a user types it: bad rows named, dry runs without storage, no leftovers."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from service.sitemaps.errors import SitemapError
from service.sitemaps.sections import Section
from service.sitemaps.sql_source import sql_batches
from service.sitemaps.writer import Limits, write_sections
from tests.sitemaps.test_cli import BASE, cli, kube_env, one_error_line

GOOD_DAY = "2026-11-22"
BAD_DAY = "2026-02-30"


def generate(url: str, query: str, out: Path) -> subprocess.CompletedProcess[str]:
    """`generate` as a user types it, from the catalog at `url` into `out`."""
    return cli(
        "generate", "--database-url", url, "--query", query, "--base-url", BASE, "--out", str(out)
    )


def catalog(path: Path, bad_rows: dict[str, int], rows: int = 5) -> str:
    """A SQLite catalog with tables items and brands; `bad_rows` puts BAD_DAY in a table's
    row of that number (from 1, in rowid order)."""
    with sqlite3.connect(path) as db:
        for table in ("items", "brands"):
            db.execute(f"CREATE TABLE {table} (url TEXT, updated_at TEXT)")
            db.executemany(
                f"INSERT INTO {table} VALUES (?, ?)",
                [
                    (
                        f"https://example.com/{table}/{n}",
                        BAD_DAY if bad_rows.get(table) == n else GOOD_DAY,
                    )
                    for n in range(1, rows + 1)
                ],
            )
    db.close()
    return f"sqlite:///{path}"


def test_an_impossible_lastmod_names_its_section_and_row(tmp_path: Path) -> None:
    url = catalog(tmp_path / "catalog.db", {"brands": 3})
    result = cli(
        "generate",
        "--database-url",
        url,
        "--section",
        "items=SELECT url, updated_at FROM items",
        "--section",
        "brands=SELECT url, updated_at FROM brands ORDER BY rowid",
        "--base-url",
        BASE,
        "--out",
        str(tmp_path / "out"),
    )
    assert one_error_line(result) == (
        f"sitemaps: error: row 3 of section 'brands': lastmod '{BAD_DAY}' "
        "is not a real date and time"
    )


def test_with_one_query_the_row_is_named_in_the_source(tmp_path: Path) -> None:
    url = catalog(tmp_path / "catalog.db", {"items": 2})
    query = "SELECT url, updated_at FROM items ORDER BY rowid"
    result = generate(url, query, tmp_path / "out")
    assert one_error_line(result) == (
        f"sitemaps: error: row 2 of the source: lastmod '{BAD_DAY}' is not a real date and time"
    )


@pytest.mark.parametrize("bad_row", [7, 4_321])
def test_the_row_is_counted_across_batches_and_the_worker_process(
    tmp_path: Path, bad_row: int
) -> None:
    """Rows past the split point are read by a worker process from an offset; its count
    continues the one of this process."""
    url = catalog(tmp_path / "catalog.db", {"items": bad_row}, rows=5_000)
    rows = sql_batches(url, "SELECT url, updated_at FROM items ORDER BY rowid", batch_size=100)
    with pytest.raises(SitemapError) as raised:
        write_sections([Section("items", rows)], tmp_path / "out", BASE, Limits(max_urls=1_000))
    assert str(raised.value).startswith(f"row {bad_row:,} of section 'items': lastmod ")
    assert not (tmp_path / "out").exists()


def test_a_loc_outside_the_schemas_bounds_names_its_row(tmp_path: Path) -> None:
    rows = [[("https://example.com/a", None), ("http://a.bc", None)]]
    with pytest.raises(SitemapError, match=r"^row 2 of section 'x': loc 'http://a.bc' has 11"):
        write_sections([Section("x", rows)], tmp_path / "out", BASE)


def test_a_failed_generate_leaves_nothing_it_created(tmp_path: Path) -> None:
    url = catalog(tmp_path / "catalog.db", {"items": 5})
    out = tmp_path / "new" / "deeper" / "out"
    query = "SELECT url, updated_at FROM items"
    result = generate(url, query, out)
    assert "row 5 of the source" in one_error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.db"]
    # Into a directory that was there: its own files stay, none of the generation's.
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("mine\n")
    result = generate(url, query, out)
    assert result.returncode == 1
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_a_source_without_urls_leaves_no_directory_either(tmp_path: Path) -> None:
    url = catalog(tmp_path / "catalog.db", {})
    out = tmp_path / "out"
    query = "SELECT url, updated_at FROM items WHERE 0"
    result = generate(url, query, out)
    assert result.returncode == 0, result.stderr
    assert "the source has no URLs; nothing written" in result.stderr
    assert not out.exists()


def test_an_out_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    url = catalog(tmp_path / "catalog.db", {})
    query = "SELECT url, updated_at FROM items"
    result = generate(url, query, tmp_path / "catalog.db")
    assert one_error_line(result) == (
        f"sitemaps: error: cannot make the directory {tmp_path / 'catalog.db'}: File exists"
    )


def test_publish_dry_run_without_storage_settings_prints_the_rest_of_the_plan(
    kube, s3_server, tmp_path: Path
) -> None:
    """As documented, it prints the plan and changes nothing; what storage would tell
    (the generations stored, and so which would be deleted) is named as not shown."""
    env = {
        k: v
        for k, v in kube_env(kube, s3_server, tmp_path).items()
        if k.startswith(("KUBE", "HOME"))
    }
    result = cli("publish", "--dry-run", "--base-url", BASE, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "plan: list the images of the processed bucket (PROCESSED_BUCKET of the storage "
        f"settings) as {BASE.rsplit('/', 1)[0]}/processed/<name> into sitemap-NNNNN.xml.gz"
    )
    assert lines[1] == f"plan: generate sitemaps with index {BASE}/sitemap.xml"
    assert lines[3].startswith("plan: switch ingress web/sitemaps from None to sitemaps-")
    assert lines[4].startswith(
        "plan: delete the generations past --retain 1: which ones is not shown, as storage "
        "cannot be read (bad storage settings: MINIO_ENDPOINT"
    )
    assert len(lines) == 5
    assert {verb for verb, _ in kube.requests} == {"get"}
    # With a SQL source too, and the options are still checked.
    sections = '[{"name": "items", "query": "SELECT 1, 2"}]'
    result = cli("publish", "--dry-run", env={**env, "SITEMAP_SECTIONS": sections})
    assert result.returncode == 0, result.stderr
    assert "plan: section items from sqlite:///sitemaps.db" in result.stdout
    assert "not shown, as storage cannot be read" in result.stdout
    result = cli("publish", "--dry-run", "--retain", "-1", env=env)
    assert "--retain" in one_error_line(result)
