"""A local stand-in for `python:3.11-slim-bookworm`, made where no registry can be reached.

How it differs from the official image (docker.io/library/python:3.11-slim-bookworm):

- Its root file system is a `debootstrap --variant=minbase bookworm` from Debian's mirror, where
  the official image starts from the `debian:bookworm-slim` image (also minbase, plus dpkg
  path exclusions for docs and man pages).
- Its CPython 3.11 is Debian's `python3.11` package (3.11.2 in /usr/bin, with Debian's patches
  and Debian's pip), not a CPython 3.11.x compiled from python.org's tarball into /usr/local.
  /usr/local/bin/python, python3, pip and pip3 are symlinks to it, and Debian's
  EXTERNALLY-MANAGED marker is removed, so `pip install` and `python` behave as in the official
  image. Compiling CPython as the official image does would add ~10 minutes to a cold run.
- Its environment sets PATH, LANG=C.UTF-8 and PYTHON_VERSION as the official image does, and
  its CMD is `python3`; it has no GPG_KEY (nothing was verified with it).

- It is larger (196 MB here): Debian's pip brings setuptools and wheel, and Debian's Python
  packages are split differently. The image size the test reports includes that difference.

It keeps the official name, so the root Dockerfile builds unchanged; the build passes the
stand-in's own digest through the PYTHON_DIGEST build argument. The image carries a label with
a hash of the recipe below, so it is made again only when the recipe changes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.container.labels import MADE_BY_TESTS

NAME = "docker.io/library/python:3.11-slim-bookworm"
MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
# What the official slim image has beyond minbase that the project's build and run rely on.
PACKAGES = ("python3.11", "python3-pip", "ca-certificates", "netbase", "tzdata")
LABEL = "org.kube-image-processing.standin-recipe"
PYTHON_VERSION = "3.11.2"
ENVIRONMENT = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "PYTHON_VERSION": PYTHON_VERSION,
}
# Run inside the debootstrapped tree before it becomes an image.
FINISH = """
set -eu
for name in python python3; do ln -sf /usr/bin/python3.11 /usr/local/bin/$name; done
for name in pip pip3; do ln -sf /usr/bin/pip3 /usr/local/bin/$name; done
rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/* /tmp/* /root/.cache
"""

RECIPE = hashlib.sha256(
    json.dumps([MIRROR, SUITE, PACKAGES, ENVIRONMENT, FINISH]).encode()
).hexdigest()[:16]


@dataclass(frozen=True)
class BaseImage:
    """A locally stored base image: the reference the Dockerfile's FROM can name, and its digest."""

    name: str
    digest: str

    @property
    def reference(self) -> str:
        return f"{self.name}@{self.digest}"


def _run(command: list[str], timeout: float) -> str:
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command[:3])} … failed ({completed.returncode}):\n{completed.stderr[-3000:]}"
        )
    return completed.stdout


def existing(name: str = NAME) -> BaseImage | None:
    """The stored stand-in made by this recipe, if there is one."""
    completed = subprocess.run(
        ["buildah", "inspect", "--type", "image", name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if completed.returncode != 0:
        return None
    document = json.loads(completed.stdout)
    labels = document.get("OCIv1", {}).get("config", {}).get("Labels") or {}
    if labels.get(LABEL) != RECIPE:
        return None
    return BaseImage(name, document["FromImageDigest"])


def build(name: str = NAME) -> BaseImage:
    """debootstrap the tree, finish it in a chroot, and commit it as `name` with buildah."""
    with tempfile.TemporaryDirectory(prefix="standin-") as scratch:
        root = Path(scratch) / "rootfs"
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(root),
                MIRROR,
            ],
            timeout=1200,
        )
        _run(["chroot", str(root), "/bin/sh", "-c", FINISH], timeout=120)
        archive = Path(scratch) / "rootfs.tar"
        _run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(archive), "."], timeout=300)
        shutil.rmtree(root)
        container = _run(["buildah", "from", "scratch"], timeout=60).strip()
        try:
            _run(["buildah", "add", "--quiet", container, str(archive), "/"], timeout=300)
            config = ["buildah", "config", "--cmd", '["python3"]', "--label", f"{LABEL}={RECIPE}"]
            config += ["--label", MADE_BY_TESTS]
            for key, value in ENVIRONMENT.items():
                config += ["--env", f"{key}={value}"]
            _run([*config, container], timeout=60)
            _run(["buildah", "commit", "--quiet", "--rm", container, name], timeout=300)
        except BaseException:
            subprocess.run(["buildah", "rm", container], capture_output=True, check=False)
            raise
    made = existing(name)
    assert made is not None, f"{name} was committed but cannot be found"
    return made


if __name__ == "__main__":
    image = existing() or build()
    print(image.reference)
    sys.exit(0)
