"""docs/sitemaps.md's commands, run as typed against the test suite's S3 and Kubernetes stand-ins."""

from __future__ import annotations

import io
import os
import re
import sqlite3
import subprocess
from pathlib import Path

from service.sitemaps import storage

ROOT = Path(__file__).resolve().parents[2]


def documented_commands() -> list[str]:
    """The shell lines of the first code block of docs/sitemaps.md, its command line."""
    page = (ROOT / "docs" / "sitemaps.md").read_text()
    block = page.split("```sh\n", 1)[1].split("```", 1)[0]
    joined = block.replace("\\\n", " ")
    lines = [line.split(" #", 1)[0].strip() for line in joined.splitlines()]
    return [re.sub(r"\s+", " ", line) for line in lines if line and not line.startswith("#")]


def test_the_documented_commands_work_as_typed(s3_server, client, kube, tmp_path):
    commands = documented_commands()
    assert len(commands) == 6
    assert all(command.startswith(".venv/bin/python -m service.sitemaps ") for command in commands)
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    # Wherever the commands keep the catalog and write the files (under build/, say).
    [database] = {m for c in commands for m in re.findall(r"sqlite:///(\S+)", c)}
    [out] = {m for c in commands for m in re.findall(r"--out (\S+)", c)}
    (tmp_path / database).parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(tmp_path / database) as db:
        for table in ("items", "brands"):
            db.execute(f"CREATE TABLE {table} (url TEXT, updated_at TEXT)")
            db.executemany(
                f"INSERT INTO {table} VALUES (?, ?)",
                [(f"https://example.com/{table}/{i}", "2026-11-22") for i in range(30)],
            )
    db.close()
    storage.create_bucket(client, "docs-images")
    client.put_object(
        bucket_name="docs-images", object_name=f"{7:064x}", data=io.BytesIO(b"x"), length=1
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SITEMAP_", "MINIO_", "KUBE"))},
        **s3_server.env(),
        "PROCESSED_BUCKET": "docs-images",
        "KUBECONFIG": str(kube.kubeconfig(tmp_path / "kubeconfig", namespace="web")),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }
    publish = next(command for command in commands if " publish --base-url" in command)
    # The CronJob publishes on a schedule: a rollback needs a second generation.
    for command in [*commands[:3], publish, *commands[3:]]:
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, (command, result.stderr)
        assert "Traceback" not in result.stderr
    assert sorted(p.name for p in (tmp_path / out).iterdir()) == [
        "sitemap-brands-00001.xml.gz",
        "sitemap-items-00001.xml.gz",
        "sitemap.xml",
    ]
    generations = storage.generations(client)
    assert len(generations) == 2
    assert kube.live == generations[0]  # rolled back
