"""MinioCluster: Secret, Services, StatefulSet, PDB and what MinIO needs on a real cluster.

Why each of those is needed: docs/architecture.md, "Real-cluster traps the program avoids".
"""

from __future__ import annotations

import pytest
from k8s_objects import containers, env, pod_spec
from stack_render import Rendered, is_secret
from stack_variants import OTHER_MINIO_IMAGE

from infra.config import parse_stack_config
from infra.config.minio import DEFAULT_MINIO_IMAGE, SILO_IMAGE


def minio(stack: Rendered) -> dict:
    return stack.one("StatefulSet", "minio")


def test_headless_service_publishes_not_ready_peers(stack: Rendered) -> None:
    headless = stack.one("Service", "minio-hl")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert sorted(p["port"] for p in headless["spec"]["ports"]) == [9000, 9001]
    assert minio(stack)["spec"]["serviceName"] == "minio-hl"


def test_client_service_is_cluster_ip(stack: Rendered) -> None:
    client = stack.one("Service", "minio")
    assert client["spec"]["type"] == "ClusterIP"
    assert sorted(p["port"] for p in client["spec"]["ports"]) == [9000, 9001]
    assert client["spec"]["selector"] == minio(stack)["spec"]["selector"]["matchLabels"]


def test_parallel_pod_management(stack: Rendered) -> None:
    assert minio(stack)["spec"]["podManagementPolicy"] == "Parallel"


def test_distributed_server_args_list_every_peer(dev: Rendered, prod: Rendered) -> None:
    for stack in (dev, prod):
        statefulset = minio(stack)
        assert statefulset["spec"]["replicas"] == 4
        args = containers(statefulset)[0]["args"]
        assert args[:2] == [
            "server",
            "http://minio-{0...3}.minio-hl.kube-image-processing.svc.cluster.local/data",
        ]


def test_console_address_is_fixed(stack: Rendered) -> None:
    args = containers(minio(stack))[0]["args"]
    assert args[args.index("--console-address") + 1] == ":9001"


def test_one_replica_runs_standalone(variant) -> None:
    result = variant("minio-1")
    args = containers(minio(result))[0]["args"]
    assert args[:2] == ["server", "/data"]
    assert not result.of_kind("PodDisruptionBudget")


def test_root_credentials_come_from_the_secret(stack: Rendered) -> None:
    secret = stack.record("Secret", minio_secret_name(stack))
    variables = env(containers(minio(stack))[0])
    for name, key in (("MINIO_ROOT_USER", "rootUser"), ("MINIO_ROOT_PASSWORD", "rootPassword")):
        ref = variables[name]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": minio_secret_name(stack), "key": key}
        assert "value" not in variables[name]
    assert "MINIO_ACCESS_KEY" not in variables
    assert "MINIO_SECRET_KEY" not in variables
    assert is_secret(secret["inputs"]["stringData"])


def minio_secret_name(stack: Rendered) -> str:
    ref = env(containers(minio(stack))[0])["MINIO_ROOT_USER"]["valueFrom"]["secretKeyRef"]
    return ref["name"]


def test_generated_credentials_are_random_and_secret(dev: Rendered) -> None:
    passwords = dev.of_type("random:index/randomPassword:RandomPassword")
    assert {p["name"] for p in passwords} == {"minio-root-user", "minio-root-password"}
    for password in passwords:
        assert "result" in password["additionalSecretOutputs"]
    secret = dev.record("Secret", minio_secret_name(dev))
    assert secret["inputs"]["stringData"]["__secret__"] == {
        "rootUser": "mock-generated-minio-root-user",
        "rootPassword": "mock-generated-minio-root-password",
    }


def test_configured_credentials_are_used_and_nothing_is_generated(dev_sql: Rendered) -> None:
    assert not dev_sql.of_type("random:index/randomPassword:RandomPassword")
    secret = dev_sql.record("Secret", minio_secret_name(dev_sql))
    assert secret["inputs"]["stringData"]["__secret__"] == {
        "rootUser": "configured-root-user-91c2",
        "rootPassword": "configured-root-password-5d7e",
    }


def test_health_probes(stack: Rendered) -> None:
    container = containers(minio(stack))[0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/minio/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/minio/health/ready"
    assert container["livenessProbe"]["httpGet"]["port"] == 9000


def test_runs_as_its_own_high_uid_with_on_root_mismatch(stack: Rendered) -> None:
    security = pod_spec(minio(stack))["securityContext"]
    assert security["runAsUser"] == 10002
    assert security["fsGroup"] == 10002
    assert security["runAsNonRoot"] is True
    assert security["fsGroupChangePolicy"] == "OnRootMismatch"


def test_small_requests_in_dev_and_config_driven(dev: Rendered, prod: Rendered) -> None:
    dev_resources = containers(minio(dev))[0]["resources"]
    assert dev_resources == {
        "requests": {"cpu": "50m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }
    assert containers(minio(prod))[0]["resources"]["requests"]["memory"] == "4Gi"


def test_volume_claim_templates_from_config(dev: Rendered, prod: Rendered) -> None:
    dev_claim = minio(dev)["spec"]["volumeClaimTemplates"][0]
    assert dev_claim["metadata"]["name"] == "data-4x1"
    assert dev_claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert dev_claim["spec"]["storageClassName"] == "standard"
    assert dev_claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    prod_claim = minio(prod)["spec"]["volumeClaimTemplates"][0]
    assert prod_claim["spec"]["resources"]["requests"]["storage"] == "100Gi"
    assert "storageClassName" not in prod_claim["spec"]
    mounts = containers(minio(dev))[0]["volumeMounts"]
    assert {"name": "data-4x1", "mountPath": "/data"} in mounts


def test_storage_change_is_an_explicit_replacement_keeping_the_claims(stack: Rendered) -> None:
    record = stack.record("StatefulSet", "minio")
    assert record["replaceOnChanges"] == ["spec.volumeClaimTemplates"]
    assert record["deleteBeforeReplace"] is True
    policy = minio(stack)["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert policy == {"whenDeleted": "Retain", "whenScaled": "Retain"}


def affinity(stack: Rendered) -> dict:
    return pod_spec(minio(stack))["affinity"]["podAntiAffinity"]


def test_soft_anti_affinity_in_dev_hard_in_prod(dev: Rendered, prod: Rendered) -> None:
    soft = affinity(dev)
    assert list(soft) == ["preferredDuringSchedulingIgnoredDuringExecution"]
    term = soft["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    hard = affinity(prod)
    assert list(hard) == ["requiredDuringSchedulingIgnoredDuringExecution"]
    term = hard["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == minio(prod)["spec"]["selector"]["matchLabels"]


def test_ci_cd_mode_only_in_dev(dev: Rendered, prod: Rendered) -> None:
    assert env(containers(minio(dev))[0])["MINIO_CI_CD"]["value"] == "true"
    assert "MINIO_CI_CD" not in env(containers(minio(prod))[0])


def test_disruption_budget_from_four_replicas(stack: Rendered) -> None:
    budget = stack.one("PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"] == minio(stack)["spec"]["selector"]


@pytest.mark.parametrize("replicas", [2, 3])
def test_no_disruption_budget_below_four_replicas(variant, replicas: int) -> None:
    result = variant(f"minio-{replicas}")
    assert not result.of_kind("PodDisruptionBudget")
    assert f"{{0...{replicas - 1}}}" in containers(minio(result))[0]["args"][1]


def test_image_is_pinned_and_configurable(dev: Rendered, variant) -> None:
    assert containers(minio(dev))[0]["image"] == DEFAULT_MINIO_IMAGE
    assert DEFAULT_MINIO_IMAGE == (
        "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
        "@sha256:14cea493d9a34af32f524e538b8346cf79f3321eff8e708c1e2960462bd8936e"
    )
    assert containers(minio(variant("minio-1")))[0]["image"] == OTHER_MINIO_IMAGE


def test_the_maintained_drop_in_named_in_the_docs_is_accepted() -> None:
    config = parse_stack_config(
        {"api": {"host": "images.example.test"}, "minio": {"image": SILO_IMAGE}}, {}
    )
    assert config.minio.image == SILO_IMAGE
    assert SILO_IMAGE.startswith("docker.io/pgsty/silo:RELEASE.")
    assert "@sha256:" in SILO_IMAGE
