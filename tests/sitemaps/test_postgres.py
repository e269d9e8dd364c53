"""The SQL source against a real PostgreSQL server on loopback (fixture `postgres_server`)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.postgres import DATABASE, PASSWORD, USER
from tests.servers import free_port
from tests.sitemaps.test_cli import BASE, cli, one_error_line

NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
ROOT = Path(__file__).resolve().parents[2]


def series(rows: int) -> str:
    return (
        "SELECT 'https://shop.example.test/p/' || n || '?ref=feed&page=' || (n % 97), "
        f"'2026-11-22T10:15:00+00:00' FROM generate_series(1, {rows}) AS n"
    )


def plain_url(server, scheme: str = "postgresql", password: str = PASSWORD) -> str:
    return f"{scheme}://{USER}:{password}@127.0.0.1:{server.port}/{DATABASE}"


def generate(url: str, query: str, out: Path) -> subprocess.CompletedProcess[str]:
    return cli(
        "generate", "--database-url", url, "--query", query, "--base-url", BASE, "--out", str(out)
    )


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_postgres_urls_use_psycopg(postgres_server, tmp_path, scheme):
    """SQLAlchemy maps postgresql:// to psycopg2, which is not installed; the job uses psycopg 3."""
    result = generate(plain_url(postgres_server, scheme), series(1_234), tmp_path)
    assert result.returncode == 0, result.stderr
    root = ET.fromstring(gzip.decompress((tmp_path / "sitemap-00001.xml.gz").read_bytes()))
    assert len(root) == 1_234
    assert root[0].findtext(f"{NS}loc") == "https://shop.example.test/p/1?ref=feed&page=1"


def peak_rss_mb(command: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run `command` and return its own peak RSS (from wait4), with its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITEMAP_")}
    with subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out, err = process.stdout.read(), process.stderr.read()  # type: ignore[union-attr]
    return usage.ru_maxrss / 1024, subprocess.CompletedProcess(
        command, process.returncode, out, err
    )


def test_a_million_rows_stream_with_flat_memory(postgres_server, tmp_path):
    """A server-side cursor: peak RSS barely moves from 50,000 to 1,000,000 rows. A client-side
    cursor would hold every row (well over 200 MB for a million); the bound is deliberately loose."""
    peaks = []
    for rows in (50_000, 1_000_000):
        command = [
            sys.executable,
            "-m",
            "service.sitemaps",
            "generate",
            "--database-url",
            plain_url(postgres_server),
            "--query",
            series(rows),
            "--base-url",
            BASE,
            "--out",
            str(tmp_path / str(rows)),
        ]
        peak, result = peak_rss_mb(command)
        assert result.returncode == 0, result.stderr
        assert f"{rows:,} URLs in {-(-rows // 50_000)} files" in result.stderr
        peaks.append(peak)
    print(f"peak RSS MB at 50k and 1M rows: {peaks}")
    assert peaks[1] - peaks[0] < 40, peaks


def test_a_bad_query_is_one_line(postgres_server, tmp_path):
    line = one_error_line(
        generate(plain_url(postgres_server), "SELECT nope FROM nowhere", tmp_path)
    )
    assert "bad query" in line
    assert 'relation "nowhere" does not exist' in line


def test_a_query_with_one_column_is_one_line(postgres_server, tmp_path):
    line = one_error_line(generate(plain_url(postgres_server), "SELECT 1", tmp_path))
    assert "must return two columns" in line


def test_a_refused_login_is_one_line_without_the_password(postgres_server, tmp_path):
    url = plain_url(postgres_server, password="wrong-password")
    line = one_error_line(generate(url, series(10), tmp_path))
    assert "database refused the login" in line
    assert "password authentication failed" in line
    assert "wrong-password" not in line


def test_an_unreachable_server_is_one_line(tmp_path):
    url = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{free_port()}/{DATABASE}"
    line = one_error_line(generate(url, series(10), tmp_path))
    assert "database unreachable" in line
    assert PASSWORD not in line


@pytest.mark.parametrize("failing_row", [1, 25_000])
def test_an_error_while_streaming_is_one_line(postgres_server, tmp_path, failing_row):
    query = (
        "SELECT 'https://shop.example.test/p/' || n, "
        f"CASE WHEN n = {failing_row} THEN (1 / (n - n))::text END "
        "FROM generate_series(1, 50000) AS n"
    )
    line = one_error_line(generate(plain_url(postgres_server), query, tmp_path))
    assert "division by zero" in line
