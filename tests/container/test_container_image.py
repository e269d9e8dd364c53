"""The built image itself: its user, no compiler, nothing of the build's CA bundle, its size."""

from __future__ import annotations

import errno
import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.container.engine import BASE, NETWORK, REPORT, Build, ca_bundle, image_size, tool

# The first test of a session builds the image: a cold build takes minutes (docs/testing.md).
pytestmark = pytest.mark.timeout(1500)

COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "x86_64-linux-gnu-gcc-12", "tcc")
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\n(.*?)-----END CERTIFICATE-----", re.DOTALL)


def _run(image: str, *command: str) -> subprocess.CompletedProcess[str]:
    """A throwaway container of `image` on no network at all."""
    return tool("podman", "run", "--rm", "--pull=never", "--network=none", image, *command)


def _certificates(bundle: bytes) -> set[bytes]:
    return {b"".join(body.split()) for body in _PEM.findall(bundle)}


def test_runs_as_uid_10001(built: Build) -> None:
    config = json.loads(tool("podman", "image", "inspect", built.image).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert _run(built.image, "id", "-u").stdout.strip() == "10001"


def test_final_stage_has_no_compiler(built: Build) -> None:
    found = _run(built.image, "sh", "-c", f"command -v {' '.join(COMPILERS)} || true").stdout
    assert found.strip() == ""


def test_drivers_load(built: Build) -> None:
    """libmagic and the PostgreSQL driver of the prod example's sitemapDatabaseUrl."""
    probe = "import magic, psycopg, sqlalchemy; print(magic.from_buffer(b'GIF89a'), psycopg.pq.version())"
    assert _run(built.image, "python", "-c", probe).stdout.startswith("GIF image data")


def test_no_build_ca_bundle_left_behind(built: Build) -> None:
    """The host's bundle was mounted for the build only: the image keeps its base's bundle."""
    bundle_path = "/etc/ssl/certs/ca-certificates.crt"
    in_image = _run(built.image, "cat", bundle_path).stdout.encode()
    base = f"{BASE}@{built.base_digest}"
    in_base = _run(base, "cat", bundle_path).stdout.encode()
    assert in_image == in_base
    host = ca_bundle()
    if host is None:
        return
    only_on_host = _certificates(Path(host).read_bytes()) - _certificates(in_base)
    if not only_on_host:
        return  # the host trusts nothing the base does not: nothing to look for
    mount = tool("podman", "image", "mount", built.image).stdout.strip()
    try:
        for certificate in only_on_host:
            line = certificate[:64].decode()
            found = subprocess.run(
                ["grep", "-rlF", "--", line, mount],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert found.stdout == "", f"a host-only CA certificate is in the image: {found.stdout}"
    finally:
        tool("podman", "image", "unmount", built.image, check=False)


def test_size_and_biggest_packages_are_reported(built: Build) -> None:
    size = image_size(built.image)
    base = image_size(f"{BASE}@{built.base_digest}")
    listing = _run(
        built.image,
        "sh",
        "-c",
        "du -sk /opt/venv/lib/python3.11/site-packages/* | sort -rn | head -6; du -sk /opt/venv",
    ).stdout.splitlines()
    *biggest, venv = listing
    REPORT["image size"] = f"{size / 1e6:.0f} MB (base {base / 1e6:.0f} MB)"
    REPORT["venv"] = f"{int(venv.split()[0]) / 1024:.0f} MiB"
    REPORT["venv's biggest packages"] = ", ".join(
        f"{Path(path).name} {int(kib) / 1024:.0f} MiB"
        for kib, path in (line.split() for line in biggest)
    )
    assert size > base


def test_containers_reach_nothing_but_the_hosts_loopback(built: Build) -> None:
    """On the tests' network a connection anywhere else is unreachable: slirp's connect from
    127.0.0.1 fails in the host's kernel, before any packet (without outbound_addr it would be
    attempted from the host's own address)."""
    probe = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('192.0.2.1', 80), timeout=10)\n"  # TEST-NET-1, RFC 5737
        "    print('connected')\n"
        "except OSError as error:\n"
        "    print(error.errno)\n"
    )
    completed = tool(
        "podman", "run", "--rm", "--pull=never", f"--network={NETWORK}", built.image,
        "python", "-c", probe,
    )  # fmt: skip
    assert completed.stdout.strip() == str(errno.ENETUNREACH)
