"""`make clean`: what the tests made goes, in the checkout and in container storage; the rest stays.

It runs in a copy of the checkout against a container storage of its own (a vfs store in
the test's temporary directory, through CONTAINERS_STORAGE_CONF), so the machine's images,
and any other run's, are never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.container import engine
from tests.container.labels import MADE_BY_TESTS
from tests.container.standin_base import LABEL as STANDIN_RECIPE

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def storage(tmp_path: Path) -> dict[str, str]:
    """The environment of podman and buildah with a store of their own under tmp_path."""
    reason = engine.missing_reason()
    if reason is not None:
        pytest.skip(reason)
    conf = tmp_path / "storage.conf"
    conf.write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{tmp_path / "graph"}"\n'
        f'runroot = "{tmp_path / "run"}"\n'
    )
    return {**engine.environment(), "CONTAINERS_STORAGE_CONF": str(conf)}


def _tool(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _image(env: dict[str, str], name: str, base: str = "scratch", *labels: str) -> str:
    container = _tool(env, "buildah", "from", base)
    for label in labels:
        _tool(env, "buildah", "config", "--label", label, container)
    _tool(env, "buildah", "commit", "--quiet", "--rm", container, name)
    return name


def _checkout(tmp_path: Path) -> Path:
    """What make clean reads, and what the tests leave in a checkout."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "tests" / "container", repo / "tests" / "container",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copy2(ROOT / "Makefile", repo / "Makefile")
    for left in (
        "build/run/8080",
        ".mypy_cache/3.11",
        ".hypothesis/examples",
        "service/__pycache__",
    ):
        (repo / left).mkdir(parents=True)
        (repo / left / "file").write_text("left behind\n")
    for kept in (".venv/lib/__pycache__", ".tools/bin"):
        (repo / kept).mkdir(parents=True)
        (repo / kept / "file").write_text("installed\n")
    return repo


def test_make_clean_removes_what_the_tests_made_and_nothing_else(
    storage: dict[str, str], tmp_path: Path
) -> None:
    ours = _image(
        storage, "localhost/kube-image-processing:container-test", "scratch", MADE_BY_TESTS
    )
    _image(storage, "localhost/layer-on-ours", ours)  # a layer buildah keeps, label inherited
    _image(storage, "docker.io/library/python:3.11-slim-bookworm", "scratch",
           f"{STANDIN_RECIPE}=0123456789abcdef")  # fmt: skip
    theirs = _image(storage, "localhost/someone-elses:latest", "scratch", "org.example.team=web")
    _tool(storage, "podman", "create", f"--label={MADE_BY_TESTS}", "--name=pod-like", ours, "/x")
    _tool(storage, "podman", "create", "--name=someone-elses", theirs, "/x")
    _tool(storage, "buildah", "from", "--name=stopped-build", ours)
    repo = _checkout(tmp_path)

    done = subprocess.run(
        ["make", "--no-print-directory", "clean"],
        cwd=repo,
        env=storage,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "clean: removed 3 images and 2 containers the container test made" in done.stdout
    images = _tool(storage, "podman", "images", "--all", "--format", "{{.Repository}}:{{.Tag}}")
    assert images.splitlines() == ["localhost/someone-elses:latest"]
    containers = _tool(storage, "podman", "ps", "--all", "--external", "--format", "{{.Names}}")
    assert containers.splitlines() == ["someone-elses"]
    left = sorted(str(path.relative_to(repo)) for path in repo.rglob("file"))
    assert left == [".tools/bin/file", ".venv/lib/__pycache__/file"]
    assert not (repo / "build").exists()
    assert os.listdir(repo / "service") == []
