"""make deploy's prerequisite check: each missing tool is named with its install link."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_missing_tools_are_named_with_install_links(tmp_path: Path) -> None:
    """Runs the real script with a PATH that holds only what a shell needs, so nothing starts."""
    for tool in ("bash", "dirname", "curl"):
        found = shutil.which(tool)
        if found:
            (tmp_path / tool).symlink_to(found)
    done = subprocess.run(
        [str(tmp_path / "bash"), str(ROOT / "scripts" / "deploy.sh")],
        env={"PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[:3] == [
        "error: pulumi is missing; install it from https://www.pulumi.com/docs/iac/download-install/",
        "error: minikube is missing; install it from https://minikube.sigs.k8s.io/docs/start/",
        "error: docker is missing; install it from https://docs.docker.com/get-docker/",
    ]
