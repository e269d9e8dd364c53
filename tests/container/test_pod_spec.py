"""The translation of the rendered pod specs into a podman run, checked without running it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.container.pod import NOT_RUN, PodContainer, ServiceAccount, quantity


@pytest.mark.parametrize("which", ["api_spec", "job_spec"])
def test_every_field_of_the_spec_is_run_or_explained(
    which: str, request: pytest.FixtureRequest
) -> None:
    spec: PodContainer = request.getfixturevalue(which)
    assert spec.not_run() == []
    assert all(reason for reason in NOT_RUN.values())


def test_a_new_field_fails_until_the_run_follows_it(api_spec: PodContainer) -> None:
    spec = PodContainer(
        api_spec.pod_spec,
        {**api_spec.container, "startupProbe": {"httpGet": {"path": "/healthz", "port": "http"}}},
        api_spec.namespace,
        api_spec.secrets,
    )
    assert spec.not_run() == ["container.startupProbe"]
    with pytest.raises(AssertionError, match=re.escape("does not run container.startupProbe")):
        spec.run_args("image", "name", {}, {}, None, Path("/nowhere"), {}, None)


def test_run_follows_the_rendered_spec(job_spec: PodContainer, tmp_path: Path) -> None:
    account = ServiceAccount("token", b"ca")
    args = job_spec.run_args("image", "name", {}, {}, account, tmp_path, {}, None)
    security = job_spec.container["securityContext"]
    uid, gid = job_spec.user
    assert f"--user={uid}:{gid}" in args
    assert ("--read-only" in args) == bool(security["readOnlyRootFilesystem"])
    for capability in security["capabilities"]["drop"]:
        assert f"--cap-drop={capability}" in args
    memory = int(quantity(job_spec.container["resources"]["limits"]["memory"]))
    assert f"--memory={memory}" in args
    assert f"--entrypoint={json.dumps(job_spec.container['command'])}" in args
    for key, value in job_spec.env().items():
        assert f"--env={key}={value}" in args
    secret_names = {
        item["valueFrom"]["secretKeyRef"]["name"]
        for item in job_spec.container["env"]
        if "secretKeyRef" in item.get("valueFrom", {})
    }
    assert secret_names <= set(job_spec.secrets)
    projected = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert sorted(p.read_bytes() for p in projected) == sorted(
        [b"token", b"ca", job_spec.namespace.encode()]
    )


def test_an_override_must_name_a_setting_of_the_spec(api_spec: PodContainer) -> None:
    with pytest.raises(AssertionError, match="MINIO_ENDPONT is not in the pod spec"):
        api_spec.run_args(
            "image", "name", {"MINIO_ENDPONT": "x"}, {}, None, Path("/nowhere"), {}, None
        )


@pytest.mark.parametrize(
    ("value", "expected"),
    [("512Mi", 512 * 2**20), ("2Gi", 2 * 2**30), ("500m", 0.5), ("1", 1), ("64M", 64_000_000)],
)
def test_quantity(value: str, expected: float) -> None:
    assert quantity(value) == expected
