"""A stand-in of the API server for one Gateway API HTTPRoute, with a Gateway controller that writes its status.

There is no Kubernetes API server or Gateway controller here, so this answers the two calls the
job makes (GET, and PATCH with a JSON Patch) with what kube-apiserver does for a CRD with a status
subresource (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go):

- the JSON Patch is applied to the stored object as a whole or not at all; a failed `test` (or a
  path that is missing) answers 422 with the Status of `NewGenericServerResponse(422, …)`: reason
  Invalid and a message that does not say which operation failed;
- a patch that changes `metadata.resourceVersion` to another value answers 409 Conflict;
- `status` cannot be changed through the main resource; `metadata.generation` grows by one when
  `spec` changes, not for labels; a patch that changes nothing keeps the resourceVersion;
- bearer token, RBAC (403) and 404 as the Ingress stand-in in conftest.py answers them.

The controller accepts each new generation of the route (after `delay_reads` GETs when slow),
refuses it (Accepted=False) or never answers, as the test sets `controller`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import jsonpointer
from lightkube import KubeConfig
from lightkube.config.models import Cluster, User

from service.sitemaps.httproute import PREFIX_POINTER, HTTPRouteSwitch
from service.sitemaps.ingress import LIVE_LABEL
from service.sitemaps.naming import is_generation
from tests.sitemaps.conftest import TOKEN, FakeKube, status

PATH = "/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes/{name}"
PLACEHOLDER = "/sitemaps-unpublished"
PARENT = {"name": "shared-gateway", "namespace": "infra"}
CONTROLLER = "example.test/gateway-controller"
# What NewGenericServerResponse writes for 422 when a JSON Patch does not apply.
PATCH_NOT_APPLIED = "the server rejected our request due to an error in our request"
REFUSAL = "NotAllowedByListeners", "No listener of Gateway infra/shared-gateway allows this route"


@dataclass
class FakeHTTPRoute(FakeKube):
    """One HTTPRoute in one namespace, as the Pulumi program renders it, and its Gateway's controller."""

    controller: str = "accept"  # "accept", "refuse" or "silent"
    delay_reads: int = 0  # GETs before the controller catches up with a new generation
    # Runs once when the next PATCH arrives, before it is applied: another writer's change.
    before_patch: Callable[[FakeHTTPRoute], None] | None = None
    patches: list[object] = field(default_factory=list)
    # A validation (CRD schema, admission) that refuses every patch with this message: 422.
    invalid: str | None = None
    document: dict[str, Any] = field(default_factory=dict)
    pending_reads: int = 0

    def __post_init__(self) -> None:
        self.document = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "uid": "6f1c2a7e-0000-4000-8000-000000000001",
                "resourceVersion": str(self.resource_version),
                "generation": 1,
                "labels": {"app.kubernetes.io/name": "sitemaps"},
            },
            "spec": {
                "parentRefs": [PARENT],
                "hostnames": ["sitemaps.example.test"],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/sitemaps"}}],
                        "filters": [
                            {
                                "type": "URLRewrite",
                                "urlRewrite": {
                                    "path": {
                                        "type": "ReplacePrefixMatch",
                                        "replacePrefixMatch": PLACEHOLDER,
                                    }
                                },
                            }
                        ],
                        "backendRefs": [{"name": "minio", "port": 9000}],
                    }
                ],
            },
        }
        self.reconcile()
        self._sync()

    @property
    def prefix(self) -> str | None:
        value = jsonpointer.resolve_pointer(self.document, PREFIX_POINTER, None)
        return value if isinstance(value, str) else None

    @property
    def generation(self) -> int:
        return int(self.document["metadata"]["generation"])

    def route(self) -> dict[str, Any]:
        return copy.deepcopy(self.document)

    def edit(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Another writer's update through the main resource (kubectl edit, Pulumi)."""
        with self.lock:
            new = self.route()
            change(new)
            self.commit(new)

    def commit(self, new: dict[str, Any]) -> None:
        """Store `new` as the API server stores an update of the main resource."""
        old = self.document
        new["status"] = copy.deepcopy(old.get("status"))
        spec_changed = new["spec"] != old["spec"]
        new["metadata"]["generation"] = old["metadata"]["generation"] + int(spec_changed)
        if new == old:
            return
        self.resource_version += 1
        new["metadata"]["resourceVersion"] = str(self.resource_version)
        self.document = new
        if spec_changed:
            self.pending_reads = self.delay_reads
            if not self.pending_reads:
                self.reconcile()
        self._sync()

    def reconcile(self) -> None:
        """The controller writes the route's status (through the status subresource)."""
        if self.controller == "silent":
            return
        accepted = self.controller == "accept"
        reason, message = ("Accepted", "") if accepted else REFUSAL
        self.document["status"] = {
            "parents": [
                {
                    "parentRef": {
                        "group": "gateway.networking.k8s.io",
                        "kind": "Gateway",
                        **PARENT,
                    },
                    "controllerName": CONTROLLER,
                    "conditions": [
                        {
                            "type": "Accepted",
                            "status": "True" if accepted else "False",
                            "reason": reason,
                            "message": message,
                            "observedGeneration": self.generation,
                            "lastTransitionTime": "2026-11-29T12:00:00Z",
                        }
                    ],
                }
            ]
        }

    def _sync(self) -> None:
        bucket = (self.prefix or "").removeprefix("/")
        self.live = bucket if is_generation(bucket) else None

    def handle(
        self, verb: str, path: str, content_type: str, body: bytes, authorization: str = ""
    ) -> tuple[int, dict[str, object]]:
        if verb == "patch" and self.before_patch:
            hook, self.before_patch = self.before_patch, None
            hook(self)  # outside the lock: it may call this server itself
        with self.lock:
            self.requests.append((verb, path))
            if authorization != f"Bearer {TOKEN}":
                return 401, status(401, "Unauthorized", "Unauthorized")
            name = path.split("?")[0].rsplit("/", 1)[-1]
            if verb in self.forbidden:
                sa = f"system:serviceaccount:{self.namespace}:sitemap-publisher"
                return 403, status(
                    403,
                    "Forbidden",
                    f'httproutes.gateway.networking.k8s.io "{name}" is forbidden: User "{sa}" '
                    f'cannot {verb} resource "httproutes" in API group "gateway.networking.k8s.io" '
                    f'in the namespace "{self.namespace}"',
                )
            expected = PATH.format(namespace=self.namespace, name=self.name)
            if path.split("?")[0] != expected or not self.exists:
                return 404, status(
                    404, "NotFound", f'httproutes.gateway.networking.k8s.io "{name}" not found'
                )
            if verb == "get":
                if self.pending_reads:
                    self.pending_reads -= 1
                    if not self.pending_reads:
                        self.reconcile()
                return 200, self.route()
            if content_type.split(";")[0] != "application/json-patch+json":
                return 415, status(
                    415, "UnsupportedMediaType", f"unsupported patch type {content_type}"
                )
            return self.patch(body)

    def patch(self, body: bytes) -> tuple[int, dict[str, object]]:
        operations = json.loads(body)
        self.patches.append(operations)
        if not isinstance(operations, list):
            return 400, status(400, "BadRequest", "json: cannot unmarshal object into Go value")
        try:
            patched = jsonpatch.apply_patch(self.document, operations)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException):
            return 422, {**status(422, "Invalid", PATCH_NOT_APPLIED), "details": {}}
        version = patched.get("metadata", {}).get("resourceVersion")
        if version not in (None, str(self.resource_version)):
            return 409, status(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on httproutes.gateway.networking.k8s.io "{self.name}": '
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        if self.invalid:
            message = (
                f'HTTPRoute.gateway.networking.k8s.io "{self.name}" is invalid: {self.invalid}'
            )
            return 422, status(422, "Invalid", message)
        self.commit(patched)
        return 200, self.route()

    def switch(self, accept_timeout: float = 5.0) -> HTTPRouteSwitch:  # type: ignore[override]
        config = KubeConfig.from_one(
            cluster=Cluster(server=self.host), user=User(token=TOKEN), namespace=self.namespace
        ).get()
        assert config is not None
        return HTTPRouteSwitch.from_config(config, self.name, None, accept_timeout)


def live_label(route: dict[str, Any]) -> str | None:
    labels: dict[str, str] = route["metadata"].get("labels") or {}
    return labels.get(LIVE_LABEL)
