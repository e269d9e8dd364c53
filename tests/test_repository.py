"""Repository-wide checks: lint, format and the Dockerfile, run as part of the suite."""

from __future__ import annotations

import ast
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


def _python_files(*roots: str) -> list[Path]:
    skipped = {".venv", ".tools", "node_modules", "__pycache__"}
    return [
        path
        for root in roots
        for path in sorted((ROOT / root).rglob("*.py"))
        if not skipped.intersection(path.relative_to(ROOT).parts)
    ]


def test_env_names_are_written_only_where_settings_are_declared() -> None:
    """Code reaches a setting's variable through `env_name`/`env_pairs`, never a copy of its name.

    Tests are left out on purpose: they pin the container's contract from outside, so that a
    renamed variable breaks them rather than passing silently.
    """
    from service.settings import ALL_SETTINGS, env_name

    names = {env_name(model, field) for model in ALL_SETTINGS for field in model.model_fields}
    declared = ROOT / "service" / "settings.py"
    copies = [
        f"{path.relative_to(ROOT)}:{node.lineno}: {node.value}"
        for path in _python_files("service", "infra", "bench", "scripts", "policy")
        if path != declared
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value in names
    ]
    assert not copies, "\n".join(copies)


def test_minio_is_called_with_keyword_arguments_only() -> None:
    """minio-py 8 makes every argument keyword-only; the code already calls it so, and stays so."""
    import inspect

    from minio import Minio

    methods = {name for name, _ in inspect.getmembers(Minio, inspect.isfunction)}
    methods = {name for name in methods if not name.startswith("_")} | {"Minio"}
    positional = [
        f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:80]}"
        for path in _python_files("service", "infra", "bench", "scripts", "tests")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and node.args
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr in methods)
            or (isinstance(node.func, ast.Name) and node.func.id == "Minio")
        )
    ]
    assert not positional, "\n".join(positional)
