"""Changes that would break a live stack are refused; valid set-ups outside the defaults work.

The topology variants model a second `pulumi up` (or preview): for a field in ignore_changes the
engine keeps the previous state's value, so the mocks answer the MinIO topology ConfigMap with
the topology recorded by the first deployment (see stack_render's `--previous`).
"""

from __future__ import annotations

import pytest
from k8s_objects import containers
from stack_render import Rendered
from stack_variants import OPERATOR_KUBECONFIG, SHORT_ROOT_PASSWORD, SHORT_ROOT_USER

from infra.config import parse_stack_config
from infra.minio import claim_name, topology_error

PROVIDER_TYPE = "pulumi:providers:kubernetes"


def _refused(result: Rendered) -> str:
    assert result.error is not None
    assert result.error["type"] == "ConfigError"
    message = result.error["message"]
    assert "\n" not in message
    return message


def topology(result: Rendered) -> dict:
    return result.record("ConfigMap", "minio-topology")


def test_the_first_deployment_records_the_topology(dev: Rendered) -> None:
    record = topology(dev)
    assert record["inputs"]["data"] == {"servers": "4", "drivesPerServer": "1"}
    assert record["ignoreChanges"] == ["data"]
    statefulset = dev.record("StatefulSet", "minio")
    assert Rendered.rebuild(statefulset)["spec"]["replicas"] == 4


@pytest.mark.parametrize("name", ["topology-refused", "topology-refused-preview"])
def test_a_new_server_count_on_a_formatted_minio_is_refused(
    rendered: dict[str, Rendered], name: str
) -> None:
    result = rendered[name]
    message = _refused(result)
    assert message.startswith("minio.replicas cannot change from 2 to 4: MinIO was formatted")
    assert "add a server pool" in message
    assert "minio.allowDataLoss=true" in message
    assert not [r for r in result.kubernetes() if r["type"].endswith(":StatefulSet")]


def test_the_same_topology_passes(variant) -> None:
    result = variant("topology-same")
    assert result.one("StatefulSet", "minio")["spec"]["replicas"] == 4


def test_allowed_data_loss_starts_an_empty_minio_on_fresh_volumes(variant) -> None:
    result = variant("topology-allowed")
    statefulset = result.one("StatefulSet", "minio")
    assert statefulset["spec"]["replicas"] == 4
    # A new claim name replaces the StatefulSet (its volumeClaimTemplates cannot change in
    # place) with new, empty volumes; the claims of the 2-server MinIO are retained, not reused.
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data-4x1"
    record = topology(result)
    assert record["ignoreChanges"] == []
    assert record["inputs"]["data"]["servers"] == "4"


def test_every_topology_has_its_own_claims() -> None:
    names = {
        claim_name(
            parse_stack_config({"minio": {"replicas": n}, "sitemaps": {"enabled": False}}, {}).minio
        )
        for n in (1, 2, 4, 8)
    }
    assert names == {"data-1x1", "data-2x1", "data-4x1", "data-8x1"}


def test_one_to_many_is_a_topology_change() -> None:
    config = parse_stack_config(
        {"minio": {"replicas": 4}, "sitemaps": {"enabled": False}}, {}
    ).minio
    assert topology_error({"servers": "1"}, config) is not None
    assert topology_error(None, config) is None


@pytest.mark.parametrize(
    ("name", "key", "secret"),
    [
        (
            "short-root-user",
            "minioRootUser: must be a string of at least 3 characters",
            SHORT_ROOT_USER,
        ),
        (
            "short-root-password",
            "minioRootPassword: must be a string of at least 8 characters",
            SHORT_ROOT_PASSWORD,
        ),
    ],
)
def test_short_root_credentials_are_refused_without_printing_them(
    rendered: dict[str, Rendered], name: str, key: str, secret: str
) -> None:
    message = _refused(rendered[name])
    assert message.startswith(key)
    assert secret not in message


def test_kubeconfig_from_the_environment_never_reaches_the_state(variant) -> None:
    """pulumi-kubernetes#3217: None would copy $KUBECONFIG into the provider's inputs."""
    result = variant("kubeconfig-env")
    (provider,) = result.of_type(PROVIDER_TYPE)
    assert provider["inputs"]["kubeconfig"] == ""
    assert OPERATOR_KUBECONFIG not in str(provider["inputs"])


def test_an_existing_namespace_is_used_and_not_created(variant) -> None:
    result = variant("namespace-exists")
    assert not result.of_kind("Namespace")
    for obj in result.objects():
        assert obj["metadata"]["namespace"] == "default", obj["kind"]
    assert result.outputs["namespace"]["value"] == "default"


def test_the_cluster_domain_is_used_for_peers_and_clients(variant) -> None:
    result = variant("cluster-domain")
    args = containers(result.one("StatefulSet", "minio"))[0]["args"]
    assert args[1] == "http://minio-{0...3}.minio-hl.kube-image-processing.svc.corp.internal/data"
    endpoint = "minio.kube-image-processing.svc.corp.internal:9000"
    assert result.outputs["minio_endpoint"]["value"] == endpoint
    api = containers(result.one("Deployment", "image-api"))[0]
    assert {"name": "MINIO_ENDPOINT", "value": endpoint} in api["env"]


def test_allowed_cidrs_admit_a_host_network_ingress_controller(variant) -> None:
    policy = variant("allowed-cidrs").one("NetworkPolicy", "minio")
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"][-1] == {"ipBlock": {"cidr": "192.168.49.0/24"}}
    assert rule["ports"] == [{"protocol": "TCP", "port": 9000}]
