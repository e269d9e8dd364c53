"""Building blocks shared by the workloads: labels, security baseline, resources, storage env."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
from pulumi_kubernetes.core.v1 import (
    CapabilitiesArgs,
    EmptyDirVolumeSourceArgs,
    EnvVarArgs,
    EnvVarSourceArgs,
    PodSecurityContextArgs,
    ResourceRequirementsArgs,
    SeccompProfileArgs,
    SecretKeySelectorArgs,
    SecurityContextArgs,
    VolumeArgs,
    VolumeMountArgs,
)

from infra.config import PROJECT, Resources

APP_UID = 10001
SKIP_AWAIT_ANNOTATION = "pulumi.com/skipAwait"
MINIO_API_PORT = 9000
MINIO_CONSOLE_PORT = 9001
MINIO_USER_KEY = "rootUser"
MINIO_PASSWORD_KEY = "rootPassword"  # noqa: S105 - the key's name inside the Secret, not a value


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
        requests=dict(resources.requests), limits=dict(resources.limits)
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


def secret_value(value: pulumi.Input[str]) -> pulumi.Output[str]:
    """`value` marked secret, whatever it was, so it is encrypted in the state and never shown."""
    return pulumi.Output.from_input(value).apply(_as_secret)


def _as_secret(value: str) -> pulumi.Output[str]:
    return pulumi.Output.secret(value)


def skip_await_annotations(skip_await: bool) -> dict[str, str]:
    """`pulumi.com/skipAwait` where no ingress controller fills in the Ingress status."""
    return {SKIP_AWAIT_ANNOTATION: "true"} if skip_await else {}


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
    """How a client workload reaches MinIO: the Service endpoint and the credentials Secret."""

    endpoint: pulumi.Output[str]
    secret_name: pulumi.Output[str]
    service_name: pulumi.Output[str]


def storage_env(storage: StorageAccess, buckets: Mapping[str, str]) -> list[EnvVarArgs]:
    """The storage settings of the service contract, with credentials from the Secret."""
    env = [
        EnvVarArgs(name="MINIO_ENDPOINT", value=storage.endpoint),
        secret_env("MINIO_ACCESS_KEY", storage.secret_name, MINIO_USER_KEY),
        secret_env("MINIO_SECRET_KEY", storage.secret_name, MINIO_PASSWORD_KEY),
        EnvVarArgs(name="MINIO_SECURE", value="false"),
    ]
    env.extend(EnvVarArgs(name=name, value=value) for name, value in buckets.items())
    return env
