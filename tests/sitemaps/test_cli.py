"""The CLI: one clear line and a non-zero exit for every expected failure, no traceback."""

from __future__ import annotations

import gzip
import os
import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from service.sitemaps.cli import main
from tests.servers import free_port

BASE = "http://sitemaps.example.test/sitemaps"
QUERY = "SELECT loc, lastmod FROM pages ORDER BY id"


@pytest.fixture
def database(tmp_path) -> str:
    path = tmp_path / "pages.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE pages (id INTEGER PRIMARY KEY, loc TEXT, lastmod TEXT)")
        db.executemany(
            "INSERT INTO pages (loc, lastmod) VALUES (?, ?)",
            [
                (f"https://shop.example.test/p/{i}?x=1&y=2", "2026-11-22 10:15:00")
                for i in range(25_001)
            ],
        )
    return f"sqlite:///{path}"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("SITEMAP_", "MINIO_", "KUBE"))
    }
    return subprocess.run(
        [sys.executable, "-m", "service.sitemaps", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
        cwd=Path(__file__).resolve().parents[2],
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_generate_from_sql_streams_into_files(tmp_path, database):
    result = cli(
        "generate",
        "--source",
        "sql",
        "--database-url",
        database,
        "--query",
        QUERY,
        "--base-url",
        BASE,
        "--out",
        str(tmp_path / "out"),
    )
    assert result.returncode == 0, result.stderr
    root = ET.fromstring(gzip.decompress((tmp_path / "out" / "sitemap-00001.xml.gz").read_bytes()))
    assert len(root) == 25_001
    assert root[0][1].text == "2026-11-22T10:15:00+00:00"


def test_database_unreachable(tmp_path):
    line = one_error_line(
        cli(
            "generate",
            "--source",
            "sql",
            "--database-url",
            f"sqlite:///{tmp_path}/none.db",
            "--query",
            QUERY,
            "--base-url",
            BASE,
            "--out",
            str(tmp_path),
        )
    )
    assert "database unreachable" in line


def test_bad_query(tmp_path, database):
    line = one_error_line(
        cli(
            "generate",
            "--source",
            "sql",
            "--database-url",
            database,
            "--query",
            "SELECT nope FROM nowhere",
            "--base-url",
            BASE,
            "--out",
            str(tmp_path),
        )
    )
    assert "bad query" in line
    assert "nowhere" in line


def test_query_must_return_two_columns(tmp_path, database, capsys):
    code = main(
        [
            "generate",
            "--source",
            "sql",
            "--database-url",
            database,
            "--query",
            "SELECT loc FROM pages",
            "--base-url",
            BASE,
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 1
    assert "bad query: it must return two columns" in capsys.readouterr().err


def test_missing_and_bad_options(tmp_path, capsys):
    line = one_error_line(
        cli("generate", "--source", "sql", "--query", QUERY, "--out", str(tmp_path))
    )
    assert "--base-url" in line
    assert "SITEMAP_BASE_URL" in line
    for argv, expected in [
        (["generate", "--source", "ftp", "--out", str(tmp_path)], "invalid choice"),
        (["generate"], "--out"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == 2
        assert len(err) == 1
        assert expected in err[0]
    assert main(["generate", "--base-url", "ftp://x", "--out", str(tmp_path)]) == 1
    assert "--base-url" in capsys.readouterr().err


def test_storage_refused_when_the_endpoint_is_down(tmp_path):
    env = {
        "MINIO_ENDPOINT": f"127.0.0.1:{free_port()}",
        "MINIO_ACCESS_KEY": "a",
        "MINIO_SECRET_KEY": "b",
    }
    line = one_error_line(cli("generate", "--base-url", BASE, "--out", str(tmp_path), env=env))
    assert "storage refused" in line


def test_storage_settings_missing(tmp_path):
    line = one_error_line(cli("generate", "--base-url", BASE, "--out", str(tmp_path)))
    assert "MINIO_ENDPOINT" in line


def test_ingress_missing_and_forbidden(kube, s3_server, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig")))
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    kube.exists = False
    assert main(["status", "--namespace", "web"]) == 1
    assert (
        capsys.readouterr().err.strip().endswith("ingress 'sitemaps' not found in namespace 'web'")
    )
    kube.exists = True
    kube.forbidden = {"patch"}
    assert (
        main(
            [
                "publish",
                "--namespace",
                "web",
                "--base-url",
                BASE,
                "--source",
                "sql",
                "--database-url",
                "sqlite://",
                "--query",
                "SELECT 'https://a.example.test/', NULL",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(
        "sitemaps: error: forbidden: cannot patch networking.k8s.io ingresses 'sitemaps' in namespace 'web'"
    )


def test_no_kubeconfig_is_one_line(tmp_path):
    env = {
        "KUBECONFIG": str(tmp_path / "missing"),
        "MINIO_ENDPOINT": "127.0.0.1:9",
        "MINIO_ACCESS_KEY": "a",
        "MINIO_SECRET_KEY": "b",
        "HOME": str(tmp_path),
    }
    assert "Kubernetes configuration" in one_error_line(cli("status", env=env))


def test_retain_must_be_a_number(tmp_path):
    env = {
        "SITEMAP_RETAIN": "many",
        "MINIO_ENDPOINT": "127.0.0.1:9",
        "MINIO_ACCESS_KEY": "a",
        "MINIO_SECRET_KEY": "b",
    }
    assert "--retain" in one_error_line(cli("status", env=env))


def test_sql_options_choose_the_sql_source(tmp_path, database):
    """Without --source, a database URL, query or section means the SQL source."""
    result = cli(
        "generate",
        "--database-url",
        database,
        "--query",
        QUERY,
        "--base-url",
        BASE,
        "--out",
        str(tmp_path / "out"),
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "sitemap-00001.xml.gz").is_file()
    env = {"SITEMAP_SOURCE": "bucket", "SITEMAP_DATABASE_URL": database}
    line = one_error_line(cli("generate", "--base-url", BASE, "--out", str(tmp_path), env=env))
    assert "--database-url only apply to the SQL source" in line
    assert "is bucket" in line
    query_only = cli("generate", "--query", QUERY, "--base-url", BASE, "--out", str(tmp_path))
    assert "no SQLite file at" in one_error_line(query_only)  # the default sqlite:///sitemaps.db


def kube_env(kube, s3_server, tmp_path, namespace: str | None = "web") -> dict[str, str]:
    config = kube.kubeconfig(tmp_path / "kubeconfig", namespace=namespace)
    return {**s3_server.env(), "KUBECONFIG": str(config), "HOME": str(tmp_path)}


def test_the_namespace_defaults_to_the_kubeconfig_contexts(kube, s3_server, tmp_path):
    result = cli("status", env=kube_env(kube, s3_server, tmp_path))
    assert result.returncode == 0, result.stderr
    assert kube.requests[-1] == (
        "get",
        "/apis/networking.k8s.io/v1/namespaces/web/ingresses/sitemaps",
    )
    result = cli("status", env=kube_env(kube, s3_server, tmp_path, namespace=None))
    assert "not found in namespace 'default'" in one_error_line(result)


def test_status_before_the_first_publication_says_so(kube, s3_server, tmp_path):
    result = cli("status", env=kube_env(kube, s3_server, tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "live: nothing yet: no generation has been published to this Ingress"
    )
    assert "None" not in result.stdout


def test_publish_dry_run_without_a_base_url_prints_what_is_missing(kube, s3_server, tmp_path):
    result = cli("publish", "--dry-run", env=kube_env(kube, s3_server, tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("plan: missing for a real run: --base-url (or SITEMAP_BASE_URL)")
    assert any("plan: list the images of bucket processed" in line for line in lines)
    assert any(line.startswith("plan: switch ingress web/sitemaps from None") for line in lines)
    assert kube.resource_version == 1
    assert {verb for verb, _ in kube.requests} == {"get"}


def test_an_unreachable_api_server_is_one_line_without_retries(s3_server, tmp_path):
    from tests.sitemaps.conftest import FakeKube

    nobody = FakeKube(host=f"http://127.0.0.1:{free_port()}")
    result = cli("status", env=kube_env(nobody, s3_server, tmp_path))
    line = one_error_line(result)
    assert f"Kubernetes API unreachable at {nobody.host}" in line
    assert result.stderr.strip() == line
    assert "Retrying" not in result.stderr


def test_a_python_without_the_projects_packages_gets_one_line(tmp_path):
    """The interpreter the virtualenv was made from, which lacks the project's packages."""
    bare = Path(sys.base_prefix) / "bin" / "python3"
    probe = subprocess.run([bare, "-c", "import minio"], capture_output=True, timeout=30)
    if probe.returncode == 0:
        pytest.skip(f"{bare} has the project's packages installed")
    result = subprocess.run(
        [bare, "-m", "service.sitemaps", "generate", "--base-url", BASE, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    line = one_error_line(result)
    assert "No module named" in line
    assert ".venv/bin/python -m service.sitemaps" in line


def test_publish_dry_run_plans_each_section_and_checks_them(kube, s3_server, tmp_path):
    sections = '[{"name": "items", "query": "SELECT 1, 2"}, {"name": "brands", "query": "q"}]'
    env = {
        **kube_env(kube, s3_server, tmp_path),
        "SITEMAP_SECTIONS": sections,
        "SITEMAP_DATABASE_URL": "postgresql://u:secret@127.0.0.1:9/catalog",
    }
    result = cli("publish", "--dry-run", "--base-url", BASE, env=env)
    assert result.returncode == 0, result.stderr
    assert (
        "plan: section items from postgresql://u:***@127.0.0.1:9/catalog into sitemap-items-NNNNN.xml.gz"
        in result.stdout
    )
    assert "sitemap-brands-NNNNN.xml.gz" in result.stdout
    assert f"plan: generate sitemaps with index {BASE}/sitemap.xml" in result.stdout
    assert "secret" not in result.stdout
    env["SITEMAP_SECTIONS"] = '[{"name": "items"}]'
    assert "item 1 ('items') has no query" in one_error_line(cli("publish", "--dry-run", env=env))


def test_a_file_that_is_no_database_is_one_line(tmp_path):
    (tmp_path / "notes.db").write_text("not a database, just notes\n" * 100)
    url = f"sqlite:///{tmp_path}/notes.db"
    result = cli(
        "generate",
        "--database-url",
        url,
        "--query",
        QUERY,
        "--base-url",
        BASE,
        "--out",
        str(tmp_path),
    )
    line = one_error_line(result)
    assert "database unreachable" in line
    assert "file is not a database" in line
