"""The Gateway API side: switch the sitemaps HTTPRoute's URLRewrite with a JSON Patch, then wait for Accepted."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2
from lightkube import ApiError, Client
from lightkube.config.kubeconfig import SingleConfig
from lightkube.generic_resource import create_namespaced_resource
from lightkube.types import PatchType

from service.sitemaps.errors import SitemapError
from service.sitemaps.ingress import (
    FIELD_MANAGER,
    LIVE_LABEL,
    ConflictError,
    KubeObject,
    api_client,
    explain,
)
from service.sitemaps.naming import is_generation

GROUP = "gateway.networking.k8s.io"
HTTPRoute = create_namespaced_resource(GROUP, "v1", "HTTPRoute", "httproutes")
# The one value the job switches: rules[0].filters[0] is the URLRewrite the Pulumi program renders.
PREFIX_POINTER = "/spec/rules/0/filters/0/urlRewrite/path/replacePrefixMatch"
LABELS_POINTER = "/metadata/labels"
LABEL_POINTER = f"{LABELS_POINTER}/{LIVE_LABEL.replace('~', '~0').replace('/', '~1')}"
ACCEPT_TIMEOUT = 60.0
FIRST_POLL, LAST_POLL = 0.2, 2.0  # seconds between reads of the route's status, doubling


@dataclass(frozen=True)
class RouteState:
    """The route as read: its rewrite target, the generation it names, its versions."""

    prefix: str  # replacePrefixMatch as it is, "/<bucket>" or a placeholder
    resource_version: str
    generation: int
    has_labels: bool

    @property
    def live(self) -> str | None:
        """The generation the rewrite names; None before the first publication."""
        bucket = self.prefix.removeprefix("/")
        return bucket if is_generation(bucket) else None


class HTTPRouteSwitch:
    """Reads and patches one HTTPRoute; the only verbs used are get and patch."""

    kind = "HTTPRoute"

    def __init__(
        self,
        api: Client,
        name: str,
        namespace: str,
        host: str = "",
        accept_timeout: float = ACCEPT_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api, self.name, self.namespace = api, name, namespace
        self.host = host or "the Kubernetes API"
        self.accept_timeout, self.sleep = accept_timeout, sleep
        self.what = KubeObject(f"{GROUP} httproutes", "httproute", name, namespace)
        self.last: RouteState | None = None

    @classmethod
    def from_config(
        cls,
        config: SingleConfig,
        name: str,
        namespace: str | None,
        accept_timeout: float = ACCEPT_TIMEOUT,
    ) -> HTTPRouteSwitch:
        """The switch for `name` in `namespace`, or in the config's namespace when None."""
        return cls(
            api_client(config),
            name,
            namespace or config.namespace,
            config.cluster.server,
            accept_timeout,
        )

    def read(self) -> RouteState:
        """The current rewrite target, resourceVersion and generation."""
        self.last = _state(self.name, self._get())
        return self.last

    def switch(self, bucket: str, resource_version: str) -> RouteState:
        """Rewrite to `bucket` only if the route is still as read at `resource_version`, then
        wait until its Gateway has accepted that generation of the route."""
        read = self.last
        if read is None or read.resource_version != resource_version:
            read = self.read()
            if read.resource_version != resource_version:
                raise ConflictError(f"the route is at {read.resource_version} now")
        try:
            route = self.api.patch(
                HTTPRoute,
                self.name,
                switch_patch(read, bucket),
                namespace=self.namespace,
                patch_type=PatchType.JSON,
                field_manager=FIELD_MANAGER,
            )
        except ApiError as error:
            if error.status.code == 409:
                raise ConflictError(str(error.status.reason)) from None
            if error.status.code == 422 and self.read().resource_version != resource_version:
                raise ConflictError("a test of the JSON Patch failed") from None
            raise explain("patch", error, self.what, self.host) from None
        except (httpx2.HTTPError, ValueError) as error:
            raise explain("patch", error, self.what, self.host) from None
        after = _state(self.name, dict(route))
        self.wait_until_accepted(after, read)
        return after

    def wait_until_accepted(self, after: RouteState, before: RouteState) -> None:
        """Poll until every parent Gateway accepts `after.generation`; refuse on Accepted=False
        or when `accept_timeout` runs out, saying what the route names now."""
        deadline = time.monotonic() + self.accept_timeout
        pause = FIRST_POLL
        route: Mapping[str, Any] | None = None
        while True:
            if route is not None:
                verdict = accepted(route, after.generation, self.namespace)
                if verdict is True:
                    return
                if verdict is not None:
                    raise self._not_accepted(
                        f"was refused by its Gateway: {verdict}", after, before
                    )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                status = pending(route or {}, after.generation)
                why = f"was not Accepted at generation {after.generation} within {self.accept_timeout:g} s ({status})"
                raise self._not_accepted(why, after, before)
            if route is not None:
                self.sleep(min(pause, remaining))
                pause = min(pause * 2, LAST_POLL)
            route = self._get()

    def _not_accepted(self, why: str, after: RouteState, before: RouteState) -> SitemapError:
        return SitemapError(
            f"httproute '{self.name}' in namespace '{self.namespace}' {why}; it rewrites to "
            f"{after.prefix} now (was {before.prefix}), which its Gateway may not serve yet; "
            "nothing was deleted"
        )

    def _get(self) -> dict[str, Any]:
        try:
            return dict(self.api.get(HTTPRoute, self.name, namespace=self.namespace))
        except (ApiError, httpx2.HTTPError, ValueError) as error:
            raise explain("get", error, self.what, self.host) from None


def switch_patch(read: RouteState, bucket: str) -> list[dict[str, Any]]:
    """The JSON Patch: tests of what was read (resourceVersion, rewrite), then the new values.

    The server applies all of it or none: a failed test changes nothing (422).
    """
    label = (
        {"op": "add", "path": LABEL_POINTER, "value": bucket}
        if read.has_labels
        else {"op": "add", "path": LABELS_POINTER, "value": {LIVE_LABEL: bucket}}
    )
    return [
        {"op": "test", "path": "/metadata/resourceVersion", "value": read.resource_version},
        {"op": "test", "path": PREFIX_POINTER, "value": read.prefix},
        {"op": "replace", "path": PREFIX_POINTER, "value": f"/{bucket}"},
        label,
    ]


def accepted(route: Mapping[str, Any], generation: int, namespace: str) -> bool | str | None:
    """True when every parentRef's Accepted condition is True at `generation`; the
    condition's reason and message when one is False at it; None while undecided."""
    statuses = [p for p in (route.get("status") or {}).get("parents") or [] if isinstance(p, dict)]
    refs = (route.get("spec") or {}).get("parentRefs") or [None]
    for ref in refs:
        mine = [
            s for s in statuses if ref is None or _same_parent(s.get("parentRef"), ref, namespace)
        ]
        conditions = [_accepted_condition(s) for s in mine]
        current = [c for c in conditions if c and c.get("observedGeneration") == generation]
        for condition in current:
            if condition.get("status") == "False":
                return f"Accepted=False {_why(condition)}"
        if not any(c.get("status") == "True" for c in current):
            return None
    return True


def pending(route: Mapping[str, Any], generation: int) -> str:
    """What the route's status says instead of Accepted at `generation`."""
    said = []
    for parent in (route.get("status") or {}).get("parents") or []:
        condition = _accepted_condition(parent)
        if condition:
            said.append(
                f"Accepted={condition.get('status')} at generation "
                f"{condition.get('observedGeneration')}: {_why(condition)}"
            )
    return "; ".join(said) or "no status from any Gateway"


def _accepted_condition(parent: Mapping[str, Any]) -> Mapping[str, Any] | None:
    conditions: Sequence[Any] = parent.get("conditions") or []
    return next(
        (c for c in conditions if isinstance(c, dict) and c.get("type") == "Accepted"), None
    )


def _why(condition: Mapping[str, Any]) -> str:
    message = " ".join(str(condition.get("message") or "").split())
    return f"{condition.get('reason') or 'no reason'}" + (f": {message}" if message else "")


def _same_parent(status_ref: Any, ref: Mapping[str, Any], namespace: str) -> bool:
    if not isinstance(status_ref, dict):
        return False
    return _parent_key(status_ref, namespace) == _parent_key(ref, namespace)


def _parent_key(ref: Mapping[str, Any], namespace: str) -> tuple[object, ...]:
    # The API's defaults, so that a status written with them matches a spec written without.
    return (
        ref.get("group", GROUP),
        ref.get("kind", "Gateway"),
        ref.get("namespace") or namespace,
        ref.get("name"),
        ref.get("sectionName"),
        ref.get("port"),
    )


def _state(name: str, route: Mapping[str, Any]) -> RouteState:
    metadata = route.get("metadata") or {}
    version = metadata.get("resourceVersion")
    if not version:
        raise SitemapError(f"httproute '{name}' came back without a resourceVersion")
    rules = (route.get("spec") or {}).get("rules") or []
    filters = (rules[0].get("filters") or [{}]) if len(rules) == 1 else [{}]
    rewrite = (filters[0].get("urlRewrite") or {}).get("path") or {}
    prefix = rewrite.get("replacePrefixMatch")
    if (
        filters[0].get("type") != "URLRewrite"
        or rewrite.get("type") != "ReplacePrefixMatch"
        or not isinstance(prefix, str)
    ):
        raise SitemapError(
            f"httproute '{name}' is not the sitemaps route: it needs exactly one rule whose "
            "first filter is a URLRewrite of type ReplacePrefixMatch"
        )
    return RouteState(prefix, version, int(metadata.get("generation") or 0), "labels" in metadata)
