"""`make clean` in container storage: what the container test made there, and nothing else.

That is every image and container labelled MADE_BY_TESTS (the built image with each layer
buildah keeps for --layers, the refused builds' layers, the stand-in base, the containers
run like pods), a stand-in base made before that label existed (it carries its recipe's
label), and any buildah working container left on one of those images by a build that was
stopped. Run as `python3 -m tests.container.clean`; it needs only the standard library.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from tests.container.labels import MADE_BY_TESTS
from tests.container.standin_base import LABEL as STANDIN_RECIPE

TIMEOUT_SECONDS = 300


def _tool(*args: str) -> str:
    done = subprocess.run(
        list(args), capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def _ids(*args: str) -> list[str]:
    return _tool(*args).split()


def made_by_tests() -> tuple[list[str], list[str], list[str]]:
    """The ids of the tests' podman containers, buildah working containers and images."""
    containers = _ids("podman", "ps", "--all", "--quiet", "--filter", f"label={MADE_BY_TESTS}")
    images: list[str] = []
    for label in (MADE_BY_TESTS, STANDIN_RECIPE):
        for image in _ids(
            "podman", "images", "--all", "--quiet", "--no-trunc", "--filter", f"label={label}"
        ):
            if image not in images:
                images.append(image)
    working = [
        container["id"]
        for container in json.loads(_tool("buildah", "containers", "--json") or "[]") or []
        if container.get("imageid") in {image.removeprefix("sha256:") for image in images}
    ]
    return containers, working, images


def main() -> int:
    missing = [tool for tool in ("podman", "buildah") if shutil.which(tool) is None]
    if missing:
        print(f"clean: no {' or '.join(missing)} here, so no container storage to clean")
        return 0
    try:
        containers, working, images = made_by_tests()
        if containers:
            _tool("podman", "rm", "--force", "--time=0", *containers)
        if working:
            _tool("buildah", "rm", *working)
        if images:
            _tool("podman", "rmi", "--force", *images)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
        print(f"clean: error: {error}", file=sys.stderr)
        return 1
    print(
        f"clean: removed {len(images)} images and {len(containers) + len(working)} containers "
        "the container test made"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
