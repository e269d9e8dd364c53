"""Gateway API routing and external S3: what the program declares, and what it leaves alone."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import test_security
from k8s_objects import containers, env
from stack_render import Rendered
from stack_variants import ENVOY_PROXY_LABELS, GATEWAY_SECRETS

from infra.common import INGRESS_CONTROLLER_LABELS
from infra.sitemaps import LIVE_BUCKET_LABEL, ROUTE_SWITCHED_FIELDS, UNPUBLISHED_PREFIX

GATEWAY_GROUP = "gateway.networking.k8s.io"
# What the sitemap job patches on the route (its JSON Patch `test` and `replace`).
SWITCHED_POINTER = "/spec/rules/0/filters/0/urlRewrite/path/replacePrefixMatch"
EXTERNAL_HOST = "objects.storage.svc.cluster.local"
MINIO_KINDS = ("StatefulSet", "PodDisruptionBudget", "ConfigMap")


def _comparable(result: Rendered) -> list[dict[str, Any]]:
    keys = ("type", "name", "inputs", "ignoreChanges", "replaceOnChanges", "deleteBeforeReplace")
    records = [{key: record[key] for key in keys} for record in result.resources]
    return sorted(records, key=lambda record: (record["type"], record["name"]))


def _pointer(obj: dict[str, Any], pointer: str) -> Any:
    node: Any = obj
    for part in pointer.strip("/").split("/"):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _cronjob_env(result: Rendered) -> dict[str, dict[str, Any]]:
    return env(containers(result.one("CronJob"))[0])


def _api_env(result: Rendered) -> dict[str, dict[str, Any]]:
    return env(containers(result.one("Deployment"))[0])


def test_default_routing_and_storage_written_out_render_exactly_the_dev_stack(
    dev: Rendered, variant
) -> None:
    explicit = variant("dev-explicit-defaults")
    assert _comparable(explicit) == _comparable(dev)
    assert explicit.outputs == dev.outputs


def test_dev_and_prod_declare_no_gateway_api_object(stack: Rendered) -> None:
    assert stack.of_kind("HTTPRoute") == []
    assert {obj["metadata"]["name"] for obj in stack.of_kind("Ingress")} == {
        "image-api",
        "sitemaps",
    }


def test_gateway_stack_declares_no_minio_and_no_ingress(variant) -> None:
    result = variant("gateway")
    kinds = {obj["kind"] for obj in result.objects()}
    assert not kinds & {"Ingress", *MINIO_KINDS}
    assert not any(obj["metadata"]["name"].startswith("minio") for obj in result.objects())
    tokens = {record["type"] for record in result.resources}
    assert "kube-image-processing:index:MinioCluster" not in tokens
    assert "kube-image-processing:index:ExternalStorage" in tokens
    assert result.of_type("random:index/randomPassword:RandomPassword") == []


def test_the_api_route_attaches_to_the_configured_gateway_listener(variant) -> None:
    route = variant("gateway").one("HTTPRoute", "image-api")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"] == {
        "parentRefs": [
            {
                "group": GATEWAY_GROUP,
                "kind": "Gateway",
                "name": "shared-gateway",
                "namespace": "gateway-system",
                "sectionName": "https",
            }
        ],
        "hostnames": ["images.example.com"],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [{"name": "image-api", "port": 80}],
                # As the Ingress's proxy-read-timeout: longer than the API's whole download.
                "timeouts": {"request": "60s"},
            }
        ],
    }


def test_the_sitemaps_route_has_the_shape_the_job_switches(variant) -> None:
    route = variant("gateway").one("HTTPRoute", "sitemaps")
    assert route["metadata"]["name"] == "sitemaps"
    assert route["spec"]["hostnames"] == ["sitemaps.example.com"]
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/sitemaps"}}]
    assert rule["filters"][0] == {
        "type": "URLRewrite",
        "urlRewrite": {
            "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/sitemaps-unpublished"},
            # An external S3 answers for its own name, not the public sitemaps host.
            "hostname": EXTERNAL_HOST,
        },
    }
    assert rule["backendRefs"] == [{"name": "external-storage", "port": 9000}]
    assert _pointer(route, SWITCHED_POINTER) == UNPUBLISHED_PREFIX
    assert LIVE_BUCKET_LABEL not in route["metadata"]["labels"]


def test_the_placeholder_prefix_names_a_bucket_no_generation_ever_has() -> None:
    from service.sitemaps.naming import PREFIX

    bucket = UNPUBLISHED_PREFIX.lstrip("/")
    assert bucket.startswith(PREFIX)
    assert not bucket[len(PREFIX) :][:1].isdigit()


def test_pulumi_leaves_the_switched_route_fields_to_the_job(variant) -> None:
    """spec.rules is an atomic list in the CRD: after the job's patch, the job owns all of it.

    ignore_changes names it by a dot-free path, which pulumi-kubernetes' handleSSAIgnoreFields
    can split into a field path: it drops the list from the apply once another manager owns it,
    and carries the live value over while Pulumi still does. The label, never declared, is only
    ever the job's.
    """
    result = variant("gateway")
    record = result.record("HTTPRoute", "sitemaps")
    assert record["ignoreChanges"] == list(ROUTE_SWITCHED_FIELDS)
    assert ROUTE_SWITCHED_FIELDS == (
        "spec.rules",
        'metadata.labels["kube-image-processing/live-bucket"]',
    )
    assert SWITCHED_POINTER.startswith("/" + ROUTE_SWITCHED_FIELDS[0].replace(".", "/") + "/")
    assert result.record("HTTPRoute", "image-api")["ignoreChanges"] == []


def test_the_job_switches_the_route_with_get_and_patch_on_it_alone(variant) -> None:
    result = variant("gateway")
    job_env = _cronjob_env(result)
    assert job_env["SITEMAP_HTTPROUTE"]["value"] == "sitemaps"
    assert "SITEMAP_INGRESS" not in job_env
    assert result.one("Role")["rules"] == [
        {
            "apiGroups": [GATEWAY_GROUP],
            "resources": ["httproutes"],
            "resourceNames": ["sitemaps"],
            "verbs": ["get", "patch"],
        }
    ]


def test_ingress_routing_keeps_the_ingress_role_and_env(dev: Rendered) -> None:
    job_env = _cronjob_env(dev)
    assert job_env["SITEMAP_INGRESS"]["value"] == "sitemaps"
    assert "SITEMAP_HTTPROUTE" not in job_env
    assert dev.one("Role")["rules"][0]["resources"] == ["ingresses"]


def test_external_storage_reaches_api_and_job_like_minio_does(variant) -> None:
    result = variant("gateway")
    secret = result.one("Secret")
    assert secret["stringData"] == {
        "rootUser": GATEWAY_SECRETS["storageAccessKey"],
        "rootPassword": GATEWAY_SECRETS["storageSecretKey"],
    }
    assert result.record("Secret", secret["metadata"]["name"])["inputs"]["stringData"] == {
        "__secret__": secret["stringData"]
    }
    for variables in (_api_env(result), _cronjob_env(result)):
        assert variables["MINIO_ENDPOINT"]["value"] == f"{EXTERNAL_HOST}:9000"
        assert variables["MINIO_SECURE"]["value"] == "false"
        assert "MINIO_REGION" not in variables
        for name, key in (("MINIO_ACCESS_KEY", "rootUser"), ("MINIO_SECRET_KEY", "rootPassword")):
            assert variables[name]["valueFrom"]["secretKeyRef"] == {
                "name": secret["metadata"]["name"],
                "key": key,
            }
    assert GATEWAY_SECRETS["storageSecretKey"] not in json.dumps(result.one("CronJob"))


def test_the_sitemaps_route_reaches_external_s3_through_an_externalname_service(
    variant,
) -> None:
    service = variant("gateway").one("Service", "external-storage")
    assert service["spec"] == {
        "type": "ExternalName",
        "externalName": EXTERNAL_HOST,
        "ports": [{"name": "s3", "port": 9000, "protocol": "TCP"}],
    }


def test_without_sitemaps_external_storage_needs_no_service_and_may_use_tls(variant) -> None:
    off = variant("gateway-sitemaps-off")
    assert [obj["metadata"]["name"] for obj in off.of_kind("HTTPRoute")] == ["image-api"]
    # routing.gateway.requestTimeout=false: for controllers without HTTPRouteRequestTimeout.
    assert "timeouts" not in off.one("HTTPRoute", "image-api")["spec"]["rules"][0]
    assert off.of_kind("Service") == [off.one("Service", "image-api")]
    tls = variant("external-tls-without-sitemaps")
    assert _api_env(tls)["MINIO_SECURE"]["value"] == "true"


def test_a_tls_endpoint_behind_the_sitemaps_route_is_refused(rendered) -> None:
    error = rendered["gateway-external-tls-refused"].error
    assert error is not None
    assert error["type"] == "ConfigError"
    assert "storage.tls: true cannot serve the sitemaps route" in error["message"]
    assert rendered["gateway-external-tls-refused"].kubernetes() == []


def test_ingress_routing_to_external_s3_sets_the_upstream_host(variant) -> None:
    result = variant("ingress-with-external-s3")
    ingress = result.one("Ingress", "sitemaps")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/upstream-vhost"] == (
        "objects.storage.example.test"
    )
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "external-storage", "port": {"number": 9000}}
    assert _api_env(result)["MINIO_REGION"]["value"] == "eu-west-1"
    assert _cronjob_env(result)["MINIO_REGION"]["value"] == "eu-west-1"
    assert not {obj["kind"] for obj in result.objects()} & set(MINIO_KINDS)


def test_minio_behind_a_gateway_admits_the_gateway_proxies_not_ingress_nginx(
    dev: Rendered, variant
) -> None:
    result = variant("gateway-with-minio")
    peers = result.one("NetworkPolicy", "minio")["spec"]["ingress"][0]["from"]
    selectors = [peer.get("podSelector", {}).get("matchLabels") for peer in peers]
    assert ENVOY_PROXY_LABELS in selectors
    assert INGRESS_CONTROLLER_LABELS not in selectors
    dev_peers = dev.one("NetworkPolicy", "minio")["spec"]["ingress"][0]["from"]
    assert INGRESS_CONTROLLER_LABELS in [
        peer.get("podSelector", {}).get("matchLabels") for peer in dev_peers
    ]
    route = result.one("HTTPRoute", "sitemaps")
    (rule,) = route["spec"]["rules"]
    assert rule["backendRefs"] == [{"name": "minio", "port": 9000}]
    assert "hostname" not in rule["filters"][0]["urlRewrite"]
    assert route["spec"]["parentRefs"] == [
        {
            "group": GATEWAY_GROUP,
            "kind": "Gateway",
            "name": "dev-gateway",
            "namespace": "kube-image-processing",
        }
    ]
    assert result.of_kind("Ingress") == []


def test_gateway_stack_outputs(variant) -> None:
    outputs = {name: value["value"] for name, value in variant("gateway").outputs.items()}
    assert outputs["api_url"] == "https://images.example.com/"
    assert outputs["sitemaps_url"] == "https://sitemaps.example.com/sitemaps/sitemap.xml"
    assert outputs["storage_endpoint"] == f"{EXTERNAL_HOST}:9000"
    assert not {"minio_service", "minio_endpoint", "minio_console_command"} & set(outputs)
    with_minio = variant("gateway-with-minio").outputs
    assert with_minio["api_url"]["value"] == "http://images.kube-image-processing.test/"
    assert with_minio["minio_service"]["value"] == "minio"


def test_a_preview_of_the_gateway_stack_declares_the_same_routes_and_role(variant) -> None:
    preview = variant("gateway-preview")
    final = variant("gateway")
    for name in ("image-api", "sitemaps"):
        assert preview.one("HTTPRoute", name) == final.one("HTTPRoute", name)
    assert preview.one("Role")["rules"] == final.one("Role")["rules"]
    assert _cronjob_env(preview)["SITEMAP_HTTPROUTE"] == {
        "name": "SITEMAP_HTTPROUTE",
        "value": "sitemaps",
    }


# The stack-wide checks of test_security that hold whatever serves storage and routes.
SECURITY_BASELINE: list[Callable[[Rendered], None]] = [
    test_security.test_every_container_runs_as_non_root_without_capabilities,
    test_security.test_every_pod_and_container_uses_the_runtime_default_seccomp_profile,
    test_security.test_no_pod_gets_an_api_token_automatically,
    test_security.test_only_the_sitemap_job_mounts_a_short_lived_api_token,
    test_security.test_every_container_has_requests_and_limits,
    test_security.test_every_long_running_container_has_probes,
    test_security.test_no_latest_images,
    test_security.test_no_credential_literal_outside_secrets,
    test_security.test_sensitive_env_only_from_secrets,
    test_security.test_secret_payloads_are_secret_inputs,
    test_security.test_credentials_appear_only_in_secret_values,
    test_security.test_stack_outputs_carry_no_credential,
]


@pytest.mark.parametrize("check", SECURITY_BASELINE, ids=lambda check: check.__name__[5:])
def test_the_gateway_stack_keeps_the_security_baseline(
    variant, check: Callable[[Rendered], None]
) -> None:
    check(variant("gateway"))


def test_every_gateway_stack_object_is_in_the_stack_namespace(variant) -> None:
    for obj in variant("gateway").objects():
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "kube-image-processing", obj["metadata"]
