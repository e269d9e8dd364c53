"""What the Dockerfile's build refuses: a stale lock, and a base digest it does not have."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.container.engine import ROOT, Build, build_command, missing_reason, tool

pytestmark = pytest.mark.timeout(1500)
SCRATCH_IMAGE = "localhost/kube-image-processing:container-test-refused"


def _context(tmp_path: Path) -> Path:
    """A copy of what the build reads (the Dockerfile and what .dockerignore lets in)."""
    context = tmp_path / "context"
    context.mkdir()
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "uv.lock"):
        shutil.copy(ROOT / name, context / name)
    shutil.copytree(ROOT / "service", context / "service")
    return context


def test_a_stale_lock_fails_the_build(built: Build, tmp_path: Path) -> None:
    context = _context(tmp_path)
    pyproject = context / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(
        text.replace("dependencies = [\n", 'dependencies = [\n    "six==1.17.0",\n', 1)
    )
    completed = tool(
        *build_command(context, built.base_digest, SCRATCH_IMAGE), timeout=600, check=False
    )
    assert completed.returncode != 0
    assert "needs to be updated, but `--locked` was provided" in completed.stderr, completed.stderr[
        -3000:
    ]


def test_the_base_digest_is_honoured(built: Build, tmp_path: Path) -> None:
    """A digest that no stored image has fails the build: the tag alone never selects the base."""
    absent = "sha256:" + "0" * 64
    completed = tool(*build_command(_context(tmp_path), absent, SCRATCH_IMAGE), check=False)
    assert completed.returncode != 0
    assert absent in completed.stderr


def test_missing_tools_are_named_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        shutil, "which", lambda name: None if name in ("podman", "runc", "docker") else name
    )
    reason = missing_reason()
    assert reason is not None
    assert reason.startswith("container test needs podman, runc (apt-get install")
    assert "\n" not in reason
