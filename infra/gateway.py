"""Gateway API HTTPRoutes: a small typed layer rendering to pulumi-kubernetes' CustomResource.

pulumi-kubernetes has no typed Gateway API classes in Python, so these frozen dataclasses name
the few fields the program uses (gateway.networking.k8s.io/v1, standard channel) and render
them in the API's camelCase. The tests validate every rendered route against the Gateway API v1
schema; the program never creates a Gateway or a controller, it only attaches routes to one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs

from infra.config.routing import GatewayConfig

GROUP = "gateway.networking.k8s.io"
API_VERSION = f"{GROUP}/v1"
KIND = "HTTPRoute"


@dataclass(frozen=True)
class PrefixRewrite:
    """A URLRewrite filter replacing the matched path prefix, and optionally the Host."""

    replace_prefix_match: str
    hostname: str | None = None

    def render(self) -> dict[str, Any]:
        rewrite: dict[str, Any] = {
            "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": self.replace_prefix_match}
        }
        if self.hostname is not None:
            rewrite["hostname"] = self.hostname
        return {"type": "URLRewrite", "urlRewrite": rewrite}


@dataclass(frozen=True)
class ServiceBackend:
    """A backendRef to a Service port in the route's own namespace."""

    name: pulumi.Input[str]
    port: int

    def render(self) -> dict[str, Any]:
        return {"name": self.name, "port": self.port}


@dataclass(frozen=True)
class RouteRule:
    """One rule: a PathPrefix match, its filters in order, one backend, optional timeout."""

    path_prefix: str
    backend: ServiceBackend
    filters: tuple[PrefixRewrite, ...] = ()
    request_timeout_seconds: int | None = None

    def render(self) -> dict[str, Any]:
        rule: dict[str, Any] = {
            "matches": [{"path": {"type": "PathPrefix", "value": self.path_prefix}}],
        }
        if self.filters:
            rule["filters"] = [item.render() for item in self.filters]
        rule["backendRefs"] = [self.backend.render()]
        if self.request_timeout_seconds is not None:
            rule["timeouts"] = {"request": f"{self.request_timeout_seconds}s"}
        return rule


@dataclass(frozen=True)
class RouteSpec:
    """An HTTPRoute's spec: attached to one Gateway, for some hostnames (none: all)."""

    gateway: GatewayConfig
    rules: tuple[RouteRule, ...]
    hostnames: tuple[str, ...] = field(default_factory=tuple)

    def parent_ref(self) -> dict[str, Any]:
        ref: dict[str, Any] = {
            "group": GROUP,
            "kind": "Gateway",
            "name": self.gateway.name,
            "namespace": self.gateway.namespace,
        }
        if self.gateway.section_name is not None:
            ref["sectionName"] = self.gateway.section_name
        return ref

    def render(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"parentRefs": [self.parent_ref()]}
        if self.hostnames:
            spec["hostnames"] = list(self.hostnames)
        spec["rules"] = [rule.render() for rule in self.rules]
        return spec


def http_route(
    logical_name: str,
    *,
    name: str,
    namespace: pulumi.Input[str],
    labels: Mapping[str, str],
    spec: RouteSpec,
    opts: pulumi.ResourceOptions,
) -> pulumi.Output[str]:
    """Declare one HTTPRoute, and return its name as an output that depends on it.

    The Gateway and its controller must already exist.
    """
    route = CustomResource(
        logical_name,
        api_version=API_VERSION,
        kind=KIND,
        metadata=ObjectMetaArgs(name=name, namespace=namespace, labels=dict(labels)),
        spec=spec.render(),
        opts=opts,
    )
    # CustomResource declares no typed outputs; the provider returns the object's metadata.
    metadata: pulumi.Output[Any] = getattr(route, "metadata")  # noqa: B009
    return metadata.apply(lambda value: str(value["name"]))
