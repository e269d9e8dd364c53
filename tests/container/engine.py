"""buildah and podman for the container test: what is missing, building the image, running it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.container import standin_base
from tests.container.labels import MADE_BY_TESTS

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = Path(__file__).with_name("containers.conf")
# One tag per checkout: several checkouts on one machine (worktrees) build and run their own
# image, never one that another checkout's test has just built under the same name.
IMAGE = (
    "localhost/kube-image-processing:container-test-"
    + hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
)
BASE = "python:3.11-slim-bookworm"
TOOLS = ("buildah", "podman", "runc", "slirp4netns", "debootstrap", "openssl")
# Inside a container on slirp4netns with allow_host_loopback, this address is the host's
# 127.0.0.1, where the test's servers listen. slirp makes every other outbound connection from
# 127.0.0.1 too, which the host's kernel cannot route anywhere: no packet leaves the host.
HOST_LOOPBACK = "10.0.2.2"
NETWORK = "slirp4netns:allow_host_loopback=true,outbound_addr=127.0.0.1"
# Filled by the tests, printed at the end of the run (conftest's pytest_terminal_summary).
REPORT: dict[str, str] = {}


def environment() -> dict[str, str]:
    """The environment of every buildah and podman call: our containers.conf (runc, ulimits)."""
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def missing_reason() -> str | None:
    """One line naming what is missing to build and run the image here, or None."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        # Docker is not used instead: its containers reach the host's loopback only through host
        # networking, which would let them send packets anywhere.
        docker = "; a Docker engine is not used" if shutil.which("docker") else ""
        return (
            f"container test needs {', '.join(missing)} "
            f"(apt-get install buildah podman runc slirp4netns debootstrap uidmap openssl){docker}"
        )
    if os.geteuid() != 0:
        return "container test needs root (debootstrap for the stand-in base image, runc's cgroups)"
    return None


def tool(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run buildah or podman with our containers.conf; a failure raises with its stderr."""
    completed = subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=environment(),
    )
    if check and completed.returncode != 0:
        raise AssertionError(
            f"{' '.join(args[:4])} … exited {completed.returncode}:\n{completed.stderr[-4000:]}"
        )
    return completed


def default_digest() -> str:
    """The base digest the Dockerfile pins (its PYTHON_DIGEST argument's default)."""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("ARG PYTHON_DIGEST="):
            return line.split("=", 1)[1].strip()
    raise AssertionError("the Dockerfile has no ARG PYTHON_DIGEST=<default>")


def base_digest() -> str:
    """The pinned official base where it is stored here, else the stand-in's own digest."""
    pinned = default_digest()
    official = tool("buildah", "inspect", "--type", "image", f"{BASE}@{pinned}", check=False)
    if official.returncode == 0:
        REPORT["base"] = f"the official {BASE}@{pinned}"
        return pinned
    started = time.monotonic()
    made = standin_base.existing()
    how = "reused"
    if made is None:
        made = standin_base.build()
        how = f"made in {time.monotonic() - started:.0f} s"
    REPORT["base"] = f"stand-in {made.reference} ({how}; see tests/container/standin_base.py)"
    return made.digest


def ca_bundle() -> Path | None:
    """The host's CA bundle, which trusts a TLS-inspecting proxy where there is one."""
    found = ssl.get_default_verify_paths().cafile
    return Path(found) if found and Path(found).is_file() else None


@dataclass(frozen=True)
class Build:
    """The built image and the base it was built on."""

    image: str
    base_digest: str
    seconds: float


def build_command(context: Path, digest: str, image: str) -> list[str]:
    """`buildah build` of `context`'s Dockerfile with only the base digest passed to it.

    The host's CA bundle is mounted over the build stages' bundle for their RUN steps only
    (buildah --volume), so pip and uv can reach PyPI through an inspecting proxy; a mount is
    never part of a layer.
    """
    command = [
        "buildah",
        "build",
        "--pull=never",
        "--layers",
        # The build downloads from Debian's mirror and PyPI; the containers run below do not.
        "--network",
        "host",
        "--build-arg",
        f"PYTHON_DIGEST={digest}",
        "--label",
        MADE_BY_TESTS,
        "--tag",
        image,
        "--file",
        str(context / "Dockerfile"),
    ]
    bundle = ca_bundle()
    if bundle is not None:
        command += ["--volume", f"{bundle}:/etc/ssl/certs/ca-certificates.crt:ro"]
    return [*command, str(context)]


def build(image: str = IMAGE) -> Build:
    """Build the root Dockerfile unchanged, on the pinned base or the stand-in."""
    digest = base_digest()
    started = time.monotonic()
    tool(*build_command(ROOT, digest, image), timeout=1200)
    return Build(image, digest, time.monotonic() - started)


def image_size(image: str) -> int:
    """The image's size in bytes, as podman reports it."""
    completed = tool("podman", "image", "inspect", image)
    return int(json.loads(completed.stdout)[0]["Size"])
