"""checkov over what each stack would deploy and over the Dockerfile: nothing fails but the skips."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from manifests import (
    BLOCKED_MARK,
    NETWORK_GUARD,
    Scan,
    documents,
    run_checkov,
    scan_directory,
    skip_reasons,
    write_manifests,
)
from stack_render import ROOT, Rendered

from infra.offline import REDACTED

SCRIPT = ROOT / "scripts" / "render-manifests.py"


@pytest.fixture(scope="module")
def gateway(variant) -> Rendered:
    """The third example stack file: Gateway API routing and external S3."""
    result: Rendered = variant("gateway")
    return result


@pytest.fixture(scope="module")
def manifests(
    dev: Rendered, prod: Rendered, gateway: Rendered, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    outdir = tmp_path_factory.mktemp("manifests")
    write_manifests({"dev": dev, "prod": prod, "gateway": gateway}, outdir)
    return outdir


@pytest.fixture(scope="module")
def scan(manifests: Path) -> Scan:
    """One checkov run over the three stacks' YAML and the Dockerfile."""
    return run_checkov(scan_directory(manifests))


def test_no_check_fails(scan: Scan) -> None:
    assert not scan.failures, "checkov failed checks:\n" + "\n".join(map(str, scan.failures))
    assert scan.returncode == 0, scan.stdout[-4000:] + scan.stderr[-4000:]


def test_both_frameworks_scanned_every_object(
    scan: Scan, dev: Rendered, prod: Rendered, gateway: Rendered
) -> None:
    assert set(scan.summaries) == {"kubernetes", "dockerfile"}, scan.stderr[-4000:]
    for framework, summary in scan.summaries.items():
        assert summary["parsing_errors"] == 0, framework
        assert summary["passed"] > 0, framework
    objects = len(documents(dev)) + len(documents(prod)) + len(documents(gateway))
    assert scan.summaries["kubernetes"]["resource_count"] >= objects
    assert scan.summaries["dockerfile"]["resource_count"] == 1


def test_checkov_never_reaches_for_the_network(scan: Scan) -> None:
    assert not scan.blocked


def test_every_skip_says_why() -> None:
    reasons = skip_reasons()
    assert reasons, "the skip list is empty: drop the test or the file, not the reasons"
    for check, reason in reasons.items():
        assert len(reason.split()) >= 4, f"{check} in .checkov.yaml needs a one-line reason"


@pytest.mark.parametrize(
    "statement",
    [
        "socket.getaddrinfo('pypi.org', 443)",
        "socket.create_connection(('10.0.0.1', 80), timeout=1)",
        "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('169.254.169.254', 53))",
    ],
)
def test_the_network_guard_refuses_before_any_packet(statement: str) -> None:
    code = f"{NETWORK_GUARD}\nimport socket\n{statement}\n"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert completed.returncode != 0
    assert BLOCKED_MARK in completed.stderr
    assert "ENETUNREACH" in completed.stderr or "no network for checkov" in completed.stderr


def test_the_network_guard_lets_loopback_through() -> None:
    code = f"{NETWORK_GUARD}\nimport socket\nsocket.getaddrinfo('127.0.0.1', 80)\n"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert completed.returncode == 0, completed.stderr


def test_manifests_hold_every_object_with_secrets_redacted(
    manifests: Path, dev: Rendered, prod: Rendered, gateway: Rendered
) -> None:
    for stack in (dev, prod, gateway):
        text = (manifests / f"{stack.stack}.yaml").read_text()
        written = list(yaml.safe_load_all(text))
        assert len(written) == len(stack.kubernetes())
        assert written[0]["kind"] == "Namespace"
        for obj in written:
            assert {"apiVersion", "kind", "metadata"} <= set(obj)
            assert obj["metadata"]["name"]
        for secret in (obj for obj in written if obj["kind"] == "Secret"):
            assert secret["stringData"]
            assert set(secret["stringData"].values()) == {REDACTED}
        generated = [
            f"mock-generated-{record['name']}"
            for record in stack.of_type("random:index/randomPassword:RandomPassword")
        ]
        for value in [*stack.secrets.values(), *generated]:
            assert value not in text


def test_the_script_writes_one_file_per_stack(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), "--stack", "dev"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert completed.stdout.split() == [str(tmp_path / "dev.yaml")]
    kinds = [obj["kind"] for obj in yaml.safe_load_all((tmp_path / "dev.yaml").read_text())]
    assert {"Deployment", "StatefulSet", "CronJob", "NetworkPolicy"} <= set(kinds)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["dev.yaml"]
