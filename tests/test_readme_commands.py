"""Every fenced shell command in the README and in docs/*.md runs as typed, or is listed here as
needing a cluster, Docker or the Pulumi CLI (or as run by another test).

Commands that run are run block by block, in order, as one bash script per block, in a scratch
directory that links to this checkout (so `.venv/bin/python`, `service/` and `scripts/` resolve
as they do at the repository's root). Blocks that talk to the API or the sample origin run
against the servers of `make run ARGS=--sitemaps` (the README's sitemap tour follows that
command); the only change made to them is the port, where the test had to pick free ones.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
# The README first, then every page of docs/: each command is named by its page and line.
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
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
    (r"^make check\b", "tests/infra/test_check.py runs it"),
    (r"^buildah build\b", "tests/container builds the image this way"),
    (
        r"^\.venv/bin/python -m service\.sitemaps\b",
        "tests/sitemaps/test_documented_commands.py runs it",
    ),
)


@dataclass(frozen=True)
class Command:
    """One logical command line of a fenced shell block of one page."""

    page: str
    block: int
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


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


def commands(markdown: str, page: str) -> list[Command]:
    """Every command, continuation lines and here-documents joined, comments dropped."""
    found: list[Command] = []
    for block, first, lines in shell_blocks(markdown):
        pending = ""
        pending_line = first
        here_end: str | None = None
        for offset, raw in enumerate(lines):
            if here_end is not None:
                found[-1] = Command(page, block, found[-1].line, f"{found[-1].text}\n{raw}")
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
                found.append(Command(page, block, pending_line, code))
                here = re.search(r"<<-?\s*'?\"?(\w+)'?\"?", code)
                here_end = here.group(1) if here else None
    return found


def classify(command: Command) -> str | None:
    """Why this command is not run here, or None when it must run."""
    for pattern, reason in (*NEEDS, *ELSEWHERE):
        if re.search(pattern, command.text):
            return reason
    return None


def page_name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


DOC_COMMANDS = [
    command for path in PAGES for command in commands(path.read_text(), page_name(path))
]


def test_the_pages_have_commands_of_each_kind() -> None:
    assert len(PAGES) > 1, "docs/ has no pages"
    reasons = {classify(command) for command in DOC_COMMANDS}
    assert None in reasons
    assert "the Pulumi CLI" in reasons
    assert {command.page for command in DOC_COMMANDS} >= {"README.md", "docs/deploying.md"}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory that looks like the repository's root, where commands may write."""
    directory = tmp_path_factory.mktemp("readme")
    for entry in (".venv", ".tools", "service", "scripts", "infra", "pyproject.toml", "uv.lock"):
        if (ROOT / entry).exists():
            (directory / entry).symlink_to(ROOT / entry)
    return directory


def _wait_for_url(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Until `url` answers 200; fails when `make run` stops first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"make run stopped with {process.returncode} before {url} answered"
            )
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@pytest.fixture(scope="module")
def local_api() -> Iterator[dict[str, str]]:
    """`make run ARGS=--sitemaps`'s servers on free ports: the API and the sample origin."""
    ports = {API: f"127.0.0.1:{free_port()}", ORIGIN: f"127.0.0.1:{free_port()}"}
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "run_local.py"),
            "--port",
            ports[API].rsplit(":", 1)[1],
            "--origin-port",
            ports[ORIGIN].rsplit(":", 1)[1],
            "--sitemaps",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(int(ports[API].rsplit(":", 1)[1]), timeout=120)
        # The sitemaps are written once the samples are converted, after the API answers.
        _wait_for_url(f"http://{ports[ORIGIN]}/sitemaps/sitemap.xml", process, timeout=120)
        yield ports
    finally:
        process.terminate()
        process.wait(timeout=60)


def _runnable_blocks() -> list[list[Command]]:
    """The commands that must run, one list per block, in the order of PAGES and of each page."""
    blocks: dict[tuple[str, int], list[Command]] = {}
    for command in DOC_COMMANDS:
        if classify(command) is None:
            blocks.setdefault((command.page, command.block), []).append(command)
    return list(blocks.values())


@pytest.mark.parametrize(
    "block_commands", _runnable_blocks(), ids=lambda commands: commands[0].where
)
def test_documented_commands_run_as_typed(
    block_commands: list[Command], scratch: Path, request: pytest.FixtureRequest
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
        f"{block_commands[0].where}:\n{script}\n--- stdout\n{done.stdout}"
        f"\n--- stderr\n{done.stderr}"
    )
