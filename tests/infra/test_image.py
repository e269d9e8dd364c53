"""AppImage: build, content tag, push, pull Secret and pull policy."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from k8s_objects import containers, pod_spec
from stack_render import Rendered, is_secret

from infra.image import REPO_ROOT, context_digest, docker_config_json, dockerignore_allowlist
from infra.offline import MOCK_DIGEST, plain

IMAGE_TYPE = "docker-build:index:Image"


def image(stack: Rendered) -> dict:
    (record,) = stack.of_type(IMAGE_TYPE)
    return record


def api_container(stack: Rendered) -> dict:
    return containers(stack.one("Deployment", "image-api"))[0]


def test_builds_the_root_dockerfile(stack: Rendered) -> None:
    inputs = image(stack)["inputs"]
    assert inputs["context"] == {"location": "."}
    assert inputs["dockerfile"] == {"location": "./Dockerfile"}


def test_without_a_push_the_daemons_own_platform_is_built(dev: Rendered, prod: Rendered) -> None:
    """minikube's daemon builds for its own node, amd64 or arm64."""
    assert "platforms" not in image(dev)["inputs"]
    assert image(prod)["inputs"]["platforms"] == ["linux/amd64"]


def test_dev_loads_into_minikube_docker_without_push(dev: Rendered) -> None:
    inputs = image(dev)["inputs"]
    assert inputs["push"] is False
    assert inputs["load"] is True
    assert "registries" not in inputs
    (tag,) = inputs["tags"]
    assert tag.startswith("kube-image-processing:ctx-")
    assert api_container(dev)["image"] == tag
    assert api_container(dev)["imagePullPolicy"] == "IfNotPresent"
    assert dev.outputs["image_ref"]["value"] == tag


def test_tag_follows_the_build_context(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").write_text("*\n!service/\n**/__pycache__\n")
    (tmp_path / "service").mkdir()
    (tmp_path / "service" / "app.py").write_text("print(1)\n")
    first = context_digest(tmp_path)
    cache = tmp_path / "service" / "__pycache__"
    cache.mkdir()
    (cache / "app.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "README.md").write_text("not in the build context\n")
    assert context_digest(tmp_path) == first
    (tmp_path / "service" / "app.py").write_text("print(2)\n")
    assert context_digest(tmp_path) != first


def test_tag_covers_what_the_repository_builds() -> None:
    assert dockerignore_allowlist(REPO_ROOT) == ["pyproject.toml", "uv.lock", "service"]


def test_no_latest_tag_anywhere(stack: Rendered) -> None:
    for tag in image(stack)["inputs"]["tags"]:
        assert not tag.endswith(":latest")
    for obj in stack.objects():
        if obj["kind"] in ("Deployment", "StatefulSet", "CronJob"):
            for container in containers(obj):
                assert ":" in container["image"].rsplit("/", 1)[-1], container["image"]
                assert not container["image"].endswith(":latest")


def test_prod_pushes_with_config_credentials_and_runs_the_digest(prod: Rendered) -> None:
    inputs = image(prod)["inputs"]
    assert inputs["push"] is True
    assert inputs["load"] is False
    (tag,) = inputs["tags"]
    assert tag.startswith("registry.example.com/platform/kube-image-processing:ctx-")
    registries = inputs["registries"]
    assert is_secret(registries)
    assert plain(registries) == [
        {
            "address": "registry.example.com",
            "username": "deploy",
            "password": "prod-registry-token-7f3a",
        }
    ]
    assert api_container(prod)["image"] == f"{tag}@{MOCK_DIGEST}"
    assert prod.outputs["image_ref"]["value"] == f"{tag}@{MOCK_DIGEST}"


def test_pull_secret_only_with_a_registry(dev: Rendered, prod: Rendered) -> None:
    assert not [s for s in dev.of_kind("Secret") if s["type"] == "kubernetes.io/dockerconfigjson"]
    assert "imagePullSecrets" not in pod_spec(dev.one("Deployment", "image-api"))
    (pull,) = [s for s in prod.of_kind("Secret") if s["type"] == "kubernetes.io/dockerconfigjson"]
    record = prod.record("Secret", pull["metadata"]["name"])
    assert is_secret(record["inputs"]["stringData"])
    document = json.loads(pull["stringData"][".dockerconfigjson"])
    entry = document["auths"]["registry.example.com"]
    assert entry["username"] == "deploy"
    assert base64.b64decode(entry["auth"]).decode() == "deploy:prod-registry-token-7f3a"
    for workload in ("Deployment", "CronJob"):
        spec = pod_spec(prod.one(workload))
        assert spec["imagePullSecrets"] == [{"name": pull["metadata"]["name"]}]


def test_docker_config_json_shape() -> None:
    document = json.loads(docker_config_json("r.example.com:5000", "u", "p"))
    assert document == {
        "auths": {"r.example.com:5000": {"username": "u", "password": "p", "auth": "dTpw"}}
    }


def test_a_registry_without_static_credentials_gets_no_pull_secret(variant) -> None:
    """`ghcr.io/org`: host and path are split; credential helpers push, the nodes pull."""
    result = variant("registry-helpers")
    inputs = image(result)["inputs"]
    assert inputs["push"] is True
    assert "registries" not in inputs
    (tag,) = inputs["tags"]
    assert tag.startswith("ghcr.io/org/kube-image-processing:ctx-")
    assert not [s for s in result.of_kind("Secret") if s["type"].endswith("dockerconfigjson")]
    for workload in ("Deployment", "CronJob"):
        assert "imagePullSecrets" not in pod_spec(result.one(workload))
    assert api_container(result)["image"] == f"{tag}@{MOCK_DIGEST}"


def test_build_can_be_skipped_on_preview(variant) -> None:
    assert image(variant("preview"))["inputs"]["buildOnPreview"] is False


def test_the_previewed_stack_commits_build_on_preview() -> None:
    """Set only in CI, it would show as a change in every preview."""
    from stack_render import stack_config

    assert stack_config("prod")["kube-image-processing:image"]["buildOnPreview"] is False
