"""Write what each stack would deploy as Kubernetes YAML, and scan it with checkov offline.

The objects come from the real program run under Pulumi's mocks (stack_render), rebuilt from
the mock inputs as the schema tests see them, with every secret value replaced by a marker.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from stack_render import ROOT, Rendered, render_all
from stack_variants import VARIANTS

from infra.offline import manifests

STACKS = ("dev", "prod", "gateway")
CHECKOV_CONFIG = ROOT / ".checkov.yaml"
DOCKERFILE = ROOT / "Dockerfile"
# Printed by the audit hook below for every attempt to reach an address off loopback.
BLOCKED_MARK = "checkov-offline: blocked"
_SKIP_LINE = re.compile(r"^\s*-\s*(?P<check>CKV2?_[A-Z0-9_]+)\s*(?:#\s*(?P<reason>.*?))?\s*$")

# An audit hook that refuses, and reports, any name look-up or connection outside loopback:
# the scan must never depend on the network, nor try to reach it.
NETWORK_GUARD = f"""
import errno, ipaddress, sys

def _local(host):
    if host is None or host in ("", "localhost"):
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False

def _guard(event, args):
    if event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr"):
        host = args[0]
    elif event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        address = args[1]
        if not isinstance(address, tuple):
            return
        host = address[0]
    else:
        return
    if not _local(host):
        print("{BLOCKED_MARK}", event, host, file=sys.stderr, flush=True)
        raise OSError(errno.ENETUNREACH, "no network for checkov")

sys.addaudithook(_guard)
"""
_RUN_CHECKOV = """
import sys, warnings
from checkov.main import Checkov
with warnings.catch_warnings():
    warnings.simplefilter("ignore", category=SyntaxWarning)
    sys.exit(Checkov(sys.argv[1:]).run())
"""


def documents(rendered: Rendered) -> list[dict[str, Any]]:
    """Every Kubernetes object of one run, secrets redacted, in install order."""
    return manifests({"resources": rendered.resources})


def write_manifests(rendered: Mapping[str, Rendered], outdir: Path) -> list[Path]:
    """Write `<outdir>/<stack>.yaml` for each run, one YAML document per object."""
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for stack, run in rendered.items():
        if run.error is not None:
            raise RuntimeError(f"the {stack} stack failed under mocks: {run.error}")
        path = outdir / f"{stack}.yaml"
        path.write_text(yaml.safe_dump_all(documents(run), sort_keys=False))
        paths.append(path)
    return paths


def render_manifests(outdir: Path, stacks: Iterable[str] = STACKS) -> list[Path]:
    """Run the program under mocks for each stack file and write its objects to `outdir`."""
    variants = {stack: VARIANTS[stack] for stack in stacks}
    work = outdir / ".render"
    work.mkdir(parents=True, exist_ok=True)
    try:
        return write_manifests(render_all(variants, work), outdir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def skip_reasons(config: Path = CHECKOV_CONFIG) -> dict[str, str]:
    """The skip list of the checkov config: each check id with the reason on its line."""
    document = yaml.safe_load(config.read_text())
    listed = [str(check) for check in document.get("skip-check") or []]
    reasons: dict[str, str] = {}
    for line in config.read_text().splitlines():
        match = _SKIP_LINE.match(line)
        if match:
            reasons[match["check"]] = match["reason"] or ""
    return {check: reasons.get(check, "") for check in listed}


@dataclass(frozen=True)
class Failure:
    """One failed check on one resource."""

    check: str
    name: str
    resource: str
    file: str

    def __str__(self) -> str:
        return f"{self.check} {self.name}: {self.resource} ({self.file})"


@dataclass(frozen=True)
class Scan:
    """What one checkov run reported."""

    returncode: int
    stdout: str
    stderr: str
    summaries: dict[str, dict[str, Any]]
    failures: list[Failure]

    @property
    def cli(self) -> str:
        """The human-readable part of checkov's output."""
        return self.stdout.split("--- OUTPUT DELIMITER ---")[0].rstrip() + "\n"

    @property
    def blocked(self) -> list[str]:
        """Network attempts the audit hook refused."""
        return [line for line in self.stderr.splitlines() if BLOCKED_MARK in line]


def run_checkov(directory: Path, config: Path = CHECKOV_CONFIG, timeout: int = 240) -> Scan:
    """Scan `directory` (manifests and a Dockerfile) with checkov, offline, with the skip list."""
    with tempfile.TemporaryDirectory(prefix="checkov-") as scratch:
        return _run_checkov(directory, config, Path(scratch), timeout)


def _run_checkov(directory: Path, config: Path, scratch: Path, timeout: int) -> Scan:
    report_dir = scratch / "report"
    command = [
        sys.executable,
        "-c",
        NETWORK_GUARD + _RUN_CHECKOV,
        "--directory",
        str(directory),
        "--config-file",
        str(config),
        "--framework",
        "kubernetes",
        "dockerfile",
        "--quiet",
        "--compact",
        "--skip-download",
        "--output",
        "cli",
        "--output",
        "json",
        "--output-file-path",
        str(report_dir),
    ]
    environment = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(scratch),
        "LANG": "C.UTF-8",
        "LOG_LEVEL": "WARNING",
        # No platform: nothing to upload to or download from.
        "BC_API_KEY": "",
        "BC_SKIP_MAPPING": "TRUE",
    }
    completed = subprocess.run(
        command,
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    report_file = report_dir / "results_json.json"
    reports: Any = json.loads(report_file.read_text()) if report_file.exists() else []
    if isinstance(reports, dict):
        reports = [reports]
    summaries: dict[str, dict[str, Any]] = {}
    failures: list[Failure] = []
    for report in reports:
        summaries[report["check_type"]] = report.get("summary", {})
        for failed in report.get("results", {}).get("failed_checks", []):
            lines = failed.get("file_line_range") or []
            failures.append(
                Failure(
                    check=failed["check_id"],
                    name=failed.get("check_name", ""),
                    resource=failed.get("resource", ""),
                    file=f"{failed.get('file_path', '')}:{'-'.join(map(str, lines))}",
                )
            )
    return Scan(completed.returncode, completed.stdout, completed.stderr, summaries, failures)


def scan_directory(outdir: Path) -> Path:
    """Put the root Dockerfile beside the manifests, so one checkov run covers both."""
    shutil.copyfile(DOCKERFILE, outdir / "Dockerfile")
    return outdir
