"""Small accessors for rebuilt Kubernetes objects in the Pulumi program tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "CronJob")


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of a Deployment, StatefulSet or CronJob."""
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return obj["spec"]["template"]["spec"]


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(obj)
    return list(spec.get("containers", [])) + list(spec.get("initContainers", []))


def env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The container's env entries by name."""
    return {entry["name"]: entry for entry in container.get("env", [])}


def strings(value: Any) -> list[str]:
    """Every string anywhere inside `value`, keys included."""
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in [key, *strings(item)]]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return [value] if isinstance(value, str) else []


def resource_field(container: dict[str, Any], ref: dict[str, Any]) -> str:
    """An env value from `resourceFieldRef`, as the kubelet fills it: the container's limit or
    request, divided by the divisor and rounded up to a whole number."""
    from math import ceil

    from infra.kinds import parse_quantity

    kind, _, resource = ref["resource"].partition(".")
    value = parse_quantity(str(container["resources"][kind][resource]))
    return str(ceil(value / parse_quantity(str(ref.get("divisor", "1")))))


def kubelet_env(
    container: dict[str, Any], namespace: str, secret: Callable[[str, str], str]
) -> dict[str, str]:
    """A container's env as the kubelet fills it: plain values, secret keys (`secret(name,
    key)`), the pod's namespace and resource fields; any other source fails the test."""
    resolved = {}
    for item in container.get("env") or []:
        name, source = item["name"], item.get("valueFrom") or {}
        if "value" in item:
            resolved[name] = str(item["value"])
        elif "secretKeyRef" in source:
            resolved[name] = secret(source["secretKeyRef"]["name"], source["secretKeyRef"]["key"])
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            resolved[name] = namespace
        elif "resourceFieldRef" in source:
            resolved[name] = resource_field(container, source["resourceFieldRef"])
        else:
            raise AssertionError(f"env {name}: unsupported source {source}")
    return resolved
