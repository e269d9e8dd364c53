"""Repository-wide checks: lint, format and the Dockerfile, run as part of the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_lint_is_clean() -> None:
    result = run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = run(str(BIN / "ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_reports_nothing() -> None:
    result = run(str(BIN / "hadolint"), "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_dockerfile_keeps_the_image_contract() -> None:
    """The image runs as uid 10001, exposes 8080 and serves the WSGI entry with gunicorn."""
    text = (ROOT / "Dockerfile").read_text()
    assert "USER 10001" in text
    assert "EXPOSE 8080" in text
    assert 'CMD ["python", "-m", "service.serve"]' in text
    final_stage = text.rsplit("\nFROM ", 1)[1]
    for compiler in ("gcc", "build-essential", "g++"):
        assert compiler not in final_stage


def test_shell_scripts_pass_shellcheck() -> None:
    scripts = [str(path.relative_to(ROOT)) for path in (ROOT / "scripts").glob("*.sh")]
    result = run(str(BIN / "shellcheck"), ".ci/run", *scripts)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_no_type_errors() -> None:
    result = run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout + result.stderr
