"""Building blocks shared by the workloads: labels, security baseline, resources, storage env."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_kubernetes.core.v1 import (
    CapabilitiesArgs,
    ConfigMapProjectionArgs,
    DownwardAPIProjectionArgs,
    DownwardAPIVolumeFileArgs,
    EmptyDirVolumeSourceArgs,
    EnvVarArgs,
    EnvVarSourceArgs,
    KeyToPathArgs,
    ObjectFieldSelectorArgs,
    PodSecurityContextArgs,
    ProjectedVolumeSourceArgs,
    ResourceRequirementsArgs,
    SeccompProfileArgs,
    SecretKeySelectorArgs,
    SecurityContextArgs,
    ServiceAccountTokenProjectionArgs,
    VolumeArgs,
    VolumeMountArgs,
    VolumeProjectionArgs,
)
from pulumi_kubernetes.meta.v1 import LabelSelectorArgs, ObjectMetaArgs
from pulumi_kubernetes.networking.v1 import (
    NetworkPolicy,
    NetworkPolicyIngressRuleArgs,
    NetworkPolicySpecArgs,
)

from infra.config.base import PROJECT
from infra.config.resources import Resources
from service.settings import EnvSettings, StorageSettings, env_name, env_pairs, env_text

APP_UID = 10001
SKIP_AWAIT_ANNOTATION = "pulumi.com/skipAwait"
MINIO_API_PORT = 9000
MINIO_CONSOLE_PORT = 9001
MINIO_USER_KEY = "rootUser"
MINIO_PASSWORD_KEY = "rootPassword"  # noqa: S105 - the key's name inside the Secret, not a value
# Where the Kubernetes clients look for the pod's API credentials (in-cluster config).
API_ACCESS_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
API_ACCESS_VOLUME = "kube-api-access"
API_TOKEN_SECONDS = 3600
# Labels of the ingress-nginx controller pods, in the minikube addon and upstream's manifests.
INGRESS_CONTROLLER_LABELS = {
    "app.kubernetes.io/name": "ingress-nginx",
    "app.kubernetes.io/component": "controller",
}


def labels(component: str) -> dict[str, str]:
    """Recommended labels that also select the pods of one component."""
    return {
        "app.kubernetes.io/name": component,
        "app.kubernetes.io/part-of": PROJECT,
        "app.kubernetes.io/managed-by": "pulumi",
    }


def selector_labels(component: str) -> dict[str, str]:
    """The stable subset of `labels` used in selectors, which are immutable."""
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/part-of": PROJECT}


def resource_requirements(resources: Resources) -> ResourceRequirementsArgs:
    """Requests and limits from stack config."""
    return ResourceRequirementsArgs(
        requests=resources.requests.model_dump(), limits=resources.limits.model_dump()
    )


def pod_security_context(uid: int) -> PodSecurityContextArgs:
    """Non-root pod identity; volumes are chowned to the group only when they do not match yet."""
    return PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=uid,
        run_as_group=uid,
        fs_group=uid,
        fs_group_change_policy="OnRootMismatch",
        seccomp_profile=SeccompProfileArgs(type="RuntimeDefault"),
    )


def container_security_context() -> SecurityContextArgs:
    """The container baseline: no privileges, no capabilities, read-only root file system."""
    return SecurityContextArgs(
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        privileged=False,
        capabilities=CapabilitiesArgs(drop=["ALL"]),
        seccomp_profile=SeccompProfileArgs(type="RuntimeDefault"),
    )


def tmp_volume(size_limit: str) -> VolumeArgs:
    """A writable scratch directory, since the root file system is read-only."""
    return VolumeArgs(name="tmp", empty_dir=EmptyDirVolumeSourceArgs(size_limit=size_limit))


def tmp_mount() -> VolumeMountArgs:
    """Where `tmp_volume` is mounted."""
    return VolumeMountArgs(name="tmp", mount_path="/tmp")  # noqa: S108 - an emptyDir, not shared


def api_access_volume() -> VolumeArgs:
    """What the automatic token mount projects, for the one pod that calls the Kubernetes API.

    Every pod spec sets automountServiceAccountToken to false; the pod that needs the API
    mounts this into the container that calls it, with a token that expires within the hour.
    """
    return VolumeArgs(
        name=API_ACCESS_VOLUME,
        projected=ProjectedVolumeSourceArgs(
            sources=[
                VolumeProjectionArgs(
                    service_account_token=ServiceAccountTokenProjectionArgs(
                        path="token", expiration_seconds=API_TOKEN_SECONDS
                    )
                ),
                VolumeProjectionArgs(
                    config_map=ConfigMapProjectionArgs(
                        name="kube-root-ca.crt", items=[KeyToPathArgs(key="ca.crt", path="ca.crt")]
                    )
                ),
                VolumeProjectionArgs(
                    downward_api=DownwardAPIProjectionArgs(
                        items=[
                            DownwardAPIVolumeFileArgs(
                                path="namespace",
                                field_ref=ObjectFieldSelectorArgs(
                                    api_version="v1", field_path="metadata.namespace"
                                ),
                            )
                        ]
                    )
                ),
            ]
        ),
    )


def api_access_mount() -> VolumeMountArgs:
    """Where `api_access_volume` is mounted: the path in-cluster clients read."""
    return VolumeMountArgs(name=API_ACCESS_VOLUME, mount_path=API_ACCESS_DIR, read_only=True)


def ingress_policy(
    logical_name: str,
    *,
    namespace: pulumi.Input[str],
    component: str,
    rules: list[NetworkPolicyIngressRuleArgs],
    opts: pulumi.ResourceOptions,
) -> NetworkPolicy:
    """Admit traffic to the pods of `component` only as `rules` allow; no rules admit nothing.

    Only where the cluster's network plugin enforces NetworkPolicy (minikube's default does not).
    """
    return NetworkPolicy(
        logical_name,
        metadata=ObjectMetaArgs(name=component, namespace=namespace, labels=labels(component)),
        spec=NetworkPolicySpecArgs(
            pod_selector=LabelSelectorArgs(match_labels=selector_labels(component)),
            policy_types=["Ingress"],
            ingress=rules or None,
        ),
        opts=opts,
    )


def secret_value(value: pulumi.Input[str]) -> pulumi.Output[str]:
    """`value` marked secret, whatever it was, so it is encrypted in the state and never shown."""
    return pulumi.Output.from_input(value).apply(_as_secret)


def _as_secret(value: str) -> pulumi.Output[str]:
    return pulumi.Output.secret(value)


def skip_await_annotations(skip_await: bool) -> dict[str, str]:
    """`pulumi.com/skipAwait` where no ingress controller fills in the Ingress status."""
    return {SKIP_AWAIT_ANNOTATION: "true"} if skip_await else {}


def plain_env(settings: EnvSettings, *fields: str) -> list[EnvVarArgs]:
    """The named settings as a container's env, in that order, validated by their own rules."""
    return [EnvVarArgs(name=name, value=value) for name, value in env_pairs(settings, *fields)]


def secret_env(name: str, secret_name: pulumi.Input[str], key: str) -> EnvVarArgs:
    """An env var read from a Secret, so no credential appears in the workload's spec."""
    return EnvVarArgs(
        name=name,
        value_from=EnvVarSourceArgs(
            secret_key_ref=SecretKeySelectorArgs(name=secret_name, key=key)
        ),
    )


@dataclass(frozen=True)
class StorageAccess:
    """How workloads and routes reach the S3 storage, MinIO's or an external one.

    `service_name` and `service_port` are what the sitemaps route sends to; `route_host` is the
    Host an external S3 must see instead of the public sitemaps host (None for MinIO).
    """

    endpoint: pulumi.Input[str]
    secret_name: pulumi.Output[str]
    service_name: pulumi.Output[str]
    service_port: int = MINIO_API_PORT
    secure: bool = False
    region: str | None = None
    route_host: str | None = None


def storage_env(storage: StorageAccess, **buckets: str) -> list[EnvVarArgs]:
    """The storage settings of the service contract, with credentials from the Secret.

    `buckets` are StorageSettings fields by name: incoming_bucket, processed_bucket.
    """
    env = [
        EnvVarArgs(name=env_name(StorageSettings, "endpoint"), value=storage.endpoint),
        secret_env(env_name(StorageSettings, "access_key"), storage.secret_name, MINIO_USER_KEY),
        secret_env(
            env_name(StorageSettings, "secret_key"), storage.secret_name, MINIO_PASSWORD_KEY
        ),
        EnvVarArgs(name=env_name(StorageSettings, "secure"), value=env_text(storage.secure)),
    ]
    if storage.region:
        env.append(EnvVarArgs(name=env_name(StorageSettings, "region"), value=storage.region))
    for field, bucket in buckets.items():
        env.append(EnvVarArgs(name=env_name(StorageSettings, field), value=bucket))
    return env
