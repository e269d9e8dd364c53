"""Project file, stack files, provider, namespace and stack outputs."""

from __future__ import annotations

import yaml
from stack_render import ROOT, Rendered, stack_config

PROVIDER_TYPE = "pulumi:providers:kubernetes"


def test_project_file_runs_infra_with_uv() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "kube-image-processing"
    assert project["main"] == "infra/"
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["toolchain"] == "uv"
    assert project["runtime"]["options"]["virtualenv"] == ".venv"
    assert (ROOT / "infra" / "__main__.py").is_file()


def test_stack_files_use_only_project_keys() -> None:
    for stack in ("dev", "prod"):
        for key in stack_config(stack):
            assert key.startswith("kube-image-processing:"), key


def test_prod_commits_no_secret() -> None:
    text = (ROOT / "Pulumi.prod.yaml").read_text()
    assert "secure:" not in text
    assert "registryPassword" not in stack_config("prod")


def test_one_provider_from_config_serves_every_resource(stack: Rendered) -> None:
    providers = stack.of_type(PROVIDER_TYPE)
    assert len(providers) == 1
    provider = providers[0]
    assert (
        provider["inputs"]["context"]
        == stack_config("dev" if "dev" in stack.stack else "prod")[
            "kube-image-processing:kubernetes"
        ]["context"]
    )
    assert provider["inputs"]["enableServerSideApply"] == "true"
    reference = f"{provider['urn']}::{provider['name']}-id"
    for record in stack.kubernetes():
        assert record["provider"] == reference, record["name"]


def test_dev_provider_targets_minikube(dev: Rendered) -> None:
    assert dev.of_type(PROVIDER_TYPE)[0]["inputs"]["context"] == "minikube"


def test_namespace_comes_from_config_and_is_created(stack: Rendered) -> None:
    namespace = stack.one("Namespace")
    assert namespace["metadata"]["name"] == "kube-image-processing"
    assert stack.outputs["namespace"]["value"] == "kube-image-processing"


def test_namespace_is_configurable(variant) -> None:
    result = variant("namespace")
    assert result.one("Namespace")["metadata"]["name"] == "images-test"
    assert all(
        obj["metadata"]["namespace"] == "images-test"
        for obj in result.objects()
        if obj["kind"] != "Namespace"
    )


def test_components_have_type_tokens_and_parent_their_children(stack: Rendered) -> None:
    tokens = {r["type"]: r["urn"] for r in stack.resources if r["type"].startswith("kube-image")}
    assert set(tokens) == {
        "kube-image-processing:index:MinioCluster",
        "kube-image-processing:index:AppImage",
        "kube-image-processing:index:ImageApi",
        "kube-image-processing:index:SitemapPublisher",
    }
    component_urns = set(tokens.values())
    for record in stack.kubernetes():
        if record["type"] == "kubernetes:core/v1:Namespace":
            continue
        assert record["parent"] in component_urns, record["name"]
    for record in stack.resources:
        assert record["name"] == record["name"].lower(), record["name"]
        assert "_" not in record["name"], record["name"]


def test_stack_outputs(stack: Rendered) -> None:
    outputs = {name: value["value"] for name, value in stack.outputs.items()}
    assert outputs["namespace"] == "kube-image-processing"
    assert outputs["minio_service"] == "minio"
    assert outputs["minio_endpoint"] == "minio.kube-image-processing.svc.cluster.local:9000"
    assert outputs["minio_console_command"] == (
        "kubectl --namespace kube-image-processing port-forward service/minio 9001:9001"
    )
    assert outputs["image_ref"]
    assert outputs["api_url"].startswith(("http://", "https://"))


def test_api_url_is_the_ingress_host_else_the_node_port(
    dev: Rendered, prod: Rendered, variant
) -> None:
    assert prod.outputs["api_url"]["value"] == "https://images.example.com/"
    assert dev.outputs["api_url"]["value"] == "http://images.kube-image-processing.test/"
    hostless = variant("no-api-host")
    node_port = hostless.outputs["api_node_port"]["value"]
    assert f":{node_port}/" in hostless.outputs["api_url"]["value"]


def test_runs_under_preview_with_builds_skipped(variant) -> None:
    result = variant("preview")
    image = result.of_type("docker-build:index:Image")[0]
    assert image["inputs"]["buildOnPreview"] is False
