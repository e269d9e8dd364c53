"""Every fenced shell command in the README runs as typed, or is listed here as needing a cluster,
Docker or the Pulumi CLI (or as run by another test).

Commands that run are run block by block, in order, as one bash script per block, in a scratch
directory that links to this checkout (so `.venv/bin/python`, `service/` and `scripts/` resolve
as they do at the repository's root). Blocks that talk to the API run against `make run`'s
servers; the only change made to them is the port, where the test had to pick free ones.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
API = "127.0.0.1:8080"
ORIGIN = "127.0.0.1:8081"

# What a command needs that this machine and CI do not have: a tool it calls, anywhere in it.
NEEDS = (
    (r"\bmake deploy\b", "minikube, Docker and the Pulumi CLI"),
    (r"\bpulumi\b", "the Pulumi CLI"),
    (r"\bkubectl\b", "a cluster"),
    (r"\bhelm\b", "a cluster"),
    (r"\bminikube\b|scripts/minikube-docker-context\.sh", "minikube"),
    (r"\bdocker\b", "Docker"),
    (r"\bKUBECONFIG=\S+ .*-m cluster\b", "a cluster"),
)
# Commands another part of the suite runs.
ELSEWHERE = (
    (r"^make test\b", "is this test suite"),
    (r"^make run\b", "tests/test_make_run.py runs it"),
    (r"^buildah build\b", "tests/container builds the image this way"),
    (r"^\.venv/bin/python -m service\.sitemaps\b", "tests/sitemaps/test_readme.py runs it"),
)


@dataclass(frozen=True)
class Command:
    """One logical command line of a fenced shell block."""

    block: int
    line: int
    text: str


def shell_blocks(markdown: str) -> Iterator[tuple[int, int, list[str]]]:
    """(block number, first line number, lines) of every ```sh / ```bash / ```shell block."""
    lines = markdown.splitlines()
    number = 0
    index = 0
    while index < len(lines):
        fence = re.match(r"^```(sh|bash|shell|console)\s*$", lines[index])
        if fence is None:
            index += 1
            continue
        start = index + 1
        end = start
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        yield number, start + 1, lines[start:end]
        number += 1
        index = end + 1


def commands(markdown: str) -> list[Command]:
    """Every command, continuation lines and here-documents joined, comments dropped."""
    found: list[Command] = []
    for block, first, lines in shell_blocks(markdown):
        pending = ""
        pending_line = first
        here_end: str | None = None
        for offset, raw in enumerate(lines):
            if here_end is not None:
                found[-1] = Command(block, found[-1].line, f"{found[-1].text}\n{raw}")
                if raw.strip() == here_end:
                    here_end = None
                continue
            if not pending:
                pending_line = first + offset
            text = raw.rstrip()
            if text.endswith("\\"):
                pending += text[:-1] + " "
                continue
            text = pending + text
            pending = ""
            code = re.sub(r"\s+#(?![^']*'[^']*$).*$", "", text).strip()
            if code and not code.startswith("#"):
                found.append(Command(block, pending_line, code))
                here = re.search(r"<<-?\s*'?\"?(\w+)'?\"?", code)
                here_end = here.group(1) if here else None
    return found


def classify(command: Command) -> str | None:
    """Why this command is not run here, or None when it must run."""
    for pattern, reason in (*NEEDS, *ELSEWHERE):
        if re.search(pattern, command.text):
            return reason
    return None


README_COMMANDS = commands(README.read_text())


def test_the_readme_has_commands_of_each_kind() -> None:
    reasons = {classify(command) for command in README_COMMANDS}
    assert None in reasons
    assert "the Pulumi CLI" in reasons


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory that looks like the repository's root, where commands may write."""
    directory = tmp_path_factory.mktemp("readme")
    for entry in (".venv", ".tools", "service", "scripts", "infra", "pyproject.toml", "uv.lock"):
        if (ROOT / entry).exists():
            (directory / entry).symlink_to(ROOT / entry)
    return directory


@pytest.fixture(scope="module")
def local_api() -> Iterator[dict[str, str]]:
    """`make run`'s servers on free ports: the API and the sample origin."""
    ports = {API: f"127.0.0.1:{free_port()}", ORIGIN: f"127.0.0.1:{free_port()}"}
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "run_local.py"),
            "--port",
            ports[API].rsplit(":", 1)[1],
            "--origin-port",
            ports[ORIGIN].rsplit(":", 1)[1],
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(int(ports[API].rsplit(":", 1)[1]), timeout=120)
        yield ports
    finally:
        process.terminate()
        process.wait(timeout=60)


def _runnable_blocks() -> list[tuple[int, list[Command]]]:
    blocks: dict[int, list[Command]] = {}
    for command in README_COMMANDS:
        if classify(command) is None:
            blocks.setdefault(command.block, []).append(command)
    return sorted(blocks.items())


@pytest.mark.parametrize(
    ("block", "block_commands"),
    _runnable_blocks(),
    ids=lambda value: f"README line {value[0].line}" if isinstance(value, list) else str(value),
)
def test_readme_commands_run_as_typed(
    block: int, block_commands: list[Command], scratch: Path, request: pytest.FixtureRequest
) -> None:
    script = "\n".join(command.text for command in block_commands)
    if API in script or ORIGIN in script:
        ports: dict[str, str] = request.getfixturevalue("local_api")
        for typed, actual in ports.items():
            script = script.replace(typed, actual)
    if shutil.which("curl") is None and "curl " in script:
        pytest.skip("curl is not installed")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, (
        f"README line {block_commands[0].line}:\n{script}\n--- stdout\n{done.stdout}"
        f"\n--- stderr\n{done.stderr}"
    )
