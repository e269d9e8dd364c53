"""Security baseline of every container, and where credentials may (and may not) appear."""

from __future__ import annotations

import re

import pytest
from k8s_objects import WORKLOAD_KINDS, containers, env, pod_spec, strings
from stack_render import Rendered, is_secret

API_ACCESS_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SENSITIVE_ENV = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN|DATABASE_URL|ROOT_USER")
# A well-known default credential that must never come back.
KNOWN_LITERALS = ("minio123",)


def workloads(stack: Rendered) -> list[dict]:
    return [obj for obj in stack.objects() if obj["kind"] in WORKLOAD_KINDS]


def credentials(stack: Rendered) -> list[str]:
    """Every credential value this run knows: configured secrets and generated passwords."""
    generated = [
        f"mock-generated-{record['name']}"
        for record in stack.of_type("random:index/randomPassword:RandomPassword")
    ]
    return [*stack.secrets.values(), *generated, *KNOWN_LITERALS]


def test_every_workload_is_covered(stack: Rendered) -> None:
    kinds = sorted(obj["kind"] for obj in workloads(stack))
    assert kinds == ["CronJob", "Deployment", "StatefulSet"]


def test_every_container_runs_as_non_root_without_capabilities(stack: Rendered) -> None:
    for obj in workloads(stack):
        pod_security = pod_spec(obj)["securityContext"]
        assert pod_security["runAsNonRoot"] is True
        assert pod_security["runAsUser"] > 0
        for container in containers(obj):
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert "add" not in security["capabilities"]
            assert security.get("privileged", False) is False
            assert security["readOnlyRootFilesystem"] is True


def test_every_pod_and_container_uses_the_runtime_default_seccomp_profile(stack: Rendered) -> None:
    # Pinned here because checkov's CKV_K8S_31 misreads CronJobs and is skipped (.checkov.yaml).
    for obj in workloads(stack):
        assert pod_spec(obj)["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in containers(obj):
            assert container["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_every_workload_runs_as_a_high_uid(stack: Rendered) -> None:
    # Above the host's user accounts, so a breakout does not land on one of them.
    uids = {obj["kind"]: pod_spec(obj)["securityContext"]["runAsUser"] for obj in workloads(stack)}
    assert all(uid >= 10000 for uid in uids.values()), uids
    assert uids["StatefulSet"] != uids["Deployment"], "MinIO and the app share a UID"


def test_no_pod_gets_an_api_token_automatically(stack: Rendered) -> None:
    for obj in workloads(stack):
        assert pod_spec(obj)["automountServiceAccountToken"] is False, obj["kind"]


def test_only_the_sitemap_job_mounts_a_short_lived_api_token(stack: Rendered) -> None:
    for obj in workloads(stack):
        volumes = {v["name"]: v for v in pod_spec(obj).get("volumes", [])}
        if obj["kind"] != "CronJob":
            assert not [v for v in volumes.values() if "projected" in v], obj["kind"]
            for container in containers(obj):
                mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
                assert API_ACCESS_DIR not in mounts
            continue
        # The job patches its Ingress, so its publisher gets what automount would give it:
        # token, cluster CA and namespace, where the Kubernetes client looks for them.
        sources = volumes["kube-api-access"]["projected"]["sources"]
        (token,) = [s["serviceAccountToken"] for s in sources if "serviceAccountToken" in s]
        assert token == {"path": "token", "expirationSeconds": 3600}
        (ca,) = [s["configMap"] for s in sources if "configMap" in s]
        assert ca == {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
        (namespace,) = [s["downwardAPI"]["items"][0] for s in sources if "downwardAPI" in s]
        assert namespace["path"] == "namespace"
        assert namespace["fieldRef"]["fieldPath"] == "metadata.namespace"
        (container,) = containers(obj)
        mount = {m["name"]: m for m in container["volumeMounts"]}["kube-api-access"]
        assert mount == {"name": "kube-api-access", "mountPath": API_ACCESS_DIR, "readOnly": True}
        assert pod_spec(obj)["serviceAccountName"] == "sitemap-publisher"


def test_every_container_has_requests_and_limits(stack: Rendered) -> None:
    for obj in workloads(stack):
        for container in containers(obj):
            resources = container["resources"]
            for part in ("requests", "limits"):
                assert set(resources[part]) >= {"cpu", "memory"}, (obj["kind"], part)


def test_every_long_running_container_has_probes(stack: Rendered) -> None:
    for obj in workloads(stack):
        if obj["kind"] == "CronJob":
            # A Job's pod runs to completion: nothing routes traffic to it (no readiness)
            # and a restart would not help a batch step (no liveness); its bound is the
            # Job's activeDeadlineSeconds instead.
            assert obj["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 0
            continue
        for container in containers(obj):
            assert container["livenessProbe"], obj["kind"]
            assert container["readinessProbe"], obj["kind"]


def test_no_latest_images(stack: Rendered) -> None:
    for obj in workloads(stack):
        for container in containers(obj):
            image = container["image"]
            assert not image.endswith(":latest"), image
            name = image.split("@", 1)[0]
            assert ":" in name.rsplit("/", 1)[-1], f"{image} has no tag"


def test_no_credential_literal_outside_secrets(stack: Rendered) -> None:
    values = credentials(stack)
    assert values
    for obj in stack.objects():
        if obj["kind"] == "Secret":
            continue
        for text in strings(obj):
            for value in values:
                assert value not in text, f"{obj['kind']}/{obj['metadata']['name']}"


def test_sensitive_env_only_from_secrets(stack: Rendered) -> None:
    for obj in workloads(stack):
        for container in containers(obj):
            for name, entry in env(container).items():
                if SENSITIVE_ENV.search(name):
                    assert "value" not in entry, name
                    assert "secretKeyRef" in entry["valueFrom"], name


def test_secret_payloads_are_secret_inputs(stack: Rendered) -> None:
    secrets = [r for r in stack.kubernetes() if r["type"] == "kubernetes:core/v1:Secret"]
    assert secrets
    for record in secrets:
        assert "data" not in record["inputs"]
        assert is_secret(record["inputs"]["stringData"]), record["name"]


def test_credentials_appear_only_in_secret_values(stack: Rendered) -> None:
    values = credentials(stack)
    for record in stack.resources:
        for key, value in record["inputs"].items():
            if is_secret(value):
                continue
            for text in strings(value):
                for credential in values:
                    assert credential not in text, f"{record['type']} {record['name']} {key}"


def test_generated_passwords_are_secret_outputs(dev: Rendered) -> None:
    for record in dev.of_type("random:index/randomPassword:RandomPassword"):
        assert "result" in record["additionalSecretOutputs"]
        assert record["inputs"]["length"] >= 20


def test_stack_outputs_carry_no_credential(stack: Rendered) -> None:
    values = credentials(stack)
    for name, output in stack.outputs.items():
        for text in strings(output["value"]):
            for credential in values:
                assert credential not in text, name


@pytest.mark.parametrize("name", ["minioRootUser", "minioRootPassword", "sitemapDatabaseUrl"])
def test_configured_secrets_stay_secret(dev_sql: Rendered, name: str) -> None:
    value = dev_sql.secrets[name]
    carriers = [
        record
        for record in dev_sql.kubernetes()
        if any(value in text for text in strings(record["inputs"]))
    ]
    assert carriers, f"{name} is not used"
    for record in carriers:
        assert record["type"] == "kubernetes:core/v1:Secret"
        assert is_secret(record["inputs"]["stringData"])
