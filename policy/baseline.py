"""The stack's security baseline as rules over one resource: its type, its name, its inputs.

The inputs are what Pulumi's policy engine hands a policy pack: keys in camelCase as the
provider receives them (`securityContext`, `runAsNonRoot`), numbers possibly as floats. Nothing
here imports pulumi_policy, so the program's own tests call these rules directly;
`__main__.py` only wraps each one into a policy of the pack.

During a preview the engine passes read-only views that raise UnknownValueError when a value
is not known yet. The rules read inputs only through the Mapping and Sequence interfaces and
never catch that error, so the engine reports such a check as one that cannot run yet instead
of taking an unknown value as compliant.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Props = Mapping[str, Any]

# Where each workload type keeps the pod spec that the rules check.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
WORKLOADS = frozenset(POD_SPEC_PATHS)
SERVICES = frozenset({"kubernetes:core/v1:Service"})
# Image resources that push, by type: whether these inputs push the image to a registry.
PUSHING_IMAGES: dict[str, Callable[[Props], bool]] = {
    "docker-build:index:Image": lambda props: props.get("push") is True,
    "docker:index/image:Image": lambda props: props.get("skipPush") is not True,
}
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Resource:
    """One resource as the policy engine shows it; `urn` only where a stack check needs it."""

    type: str
    name: str
    props: Props
    urn: str = ""

    @property
    def kind(self) -> str:
        """The last part of the type token: "Deployment" for kubernetes:apps/v1:Deployment."""
        return self.type.rsplit(":", 1)[-1]


@dataclass(frozen=True)
class Rule:
    """A check of one resource at a time, on the resource types it names."""

    name: str
    description: str
    types: frozenset[str]
    problems: Callable[[Resource], Iterator[str]]

    def violations(self, resource: Resource) -> list[str]:
        """One message per problem, each naming the resource and this rule; none: accepted."""
        if resource.type not in self.types:
            return []
        return [
            f"{resource.kind} {resource.name} breaks {self.name}: {problem}"
            for problem in self.problems(resource)
        ]


@dataclass(frozen=True)
class StackRule:
    """A check that needs the whole stack: every resource with its outputs."""

    name: str
    description: str
    problems: Callable[[Sequence[Resource]], Iterator[tuple[Resource, str]]]

    def violations(self, resources: Sequence[Resource]) -> list[tuple[Resource, str]]:
        return [
            (resource, f"{resource.kind} {resource.name} breaks {self.name}: {problem}")
            for resource, problem in self.problems(resources)
        ]


def _mapping(value: Any) -> Props:
    return value if isinstance(value, Mapping) else {}


def _items(value: Any) -> Sequence[Any]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return value
    return ()


def pod_spec(resource: Resource) -> Props | None:
    """The pod spec of a workload, or None where it has none."""
    value: Any = resource.props
    for key in POD_SPEC_PATHS[resource.type]:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value if isinstance(value, Mapping) else None


def containers(spec: Props) -> Iterator[tuple[str, Props]]:
    """Every container and init container of a pod spec, each with a label naming it."""
    for field, label in (("initContainers", "init container"), ("containers", "container")):
        for container in _items(spec.get(field)):
            if isinstance(container, Mapping):
                yield f"{label} {container.get('name', '(unnamed)')}", container


def _per_container(
    check: Callable[[str, Props, Props], Iterator[str]],
) -> Callable[[Resource], Iterator[str]]:
    """A workload check run on every container, with the pod's security context beside it."""

    def problems(resource: Resource) -> Iterator[str]:
        spec = pod_spec(resource)
        if spec is None:
            yield "it has no pod spec to check"
            return
        pod_context = _mapping(spec.get("securityContext"))
        for label, container in containers(spec):
            yield from check(label, container, pod_context)

    return problems


def _effective(container: Props, pod_context: Props, key: str) -> Any:
    """A security setting as the kubelet applies it: the container's, else the pod's."""
    own = _mapping(container.get("securityContext"))
    return own[key] if key in own else pod_context.get(key)


def _runs_as_non_root(label: str, container: Props, pod_context: Props) -> Iterator[str]:
    if _effective(container, pod_context, "runAsNonRoot") is not True:
        yield f"{label} does not set runAsNonRoot: true (itself or through its pod)"
    user = _effective(container, pod_context, "runAsUser")
    if user is not None and user == 0:
        yield f"{label} runs as user 0"


def _no_privilege_escalation(label: str, container: Props, pod_context: Props) -> Iterator[str]:
    context = _mapping(container.get("securityContext"))
    if context.get("allowPrivilegeEscalation") is not False:
        yield f"{label} does not set allowPrivilegeEscalation: false"
    if context.get("privileged") is True:
        yield f"{label} is privileged"


def _drops_every_capability(label: str, container: Props, pod_context: Props) -> Iterator[str]:
    capabilities = _mapping(_mapping(container.get("securityContext")).get("capabilities"))
    if "ALL" not in {str(name).upper() for name in _items(capabilities.get("drop"))}:
        yield f"{label} does not drop ALL capabilities"
    added = [str(name) for name in _items(capabilities.get("add"))]
    if added:
        yield f"{label} adds capabilities {', '.join(added)}"


def _seccomp_runtime_default(label: str, container: Props, pod_context: Props) -> Iterator[str]:
    profile = _mapping(_effective(container, pod_context, "seccompProfile"))
    if profile.get("type") != "RuntimeDefault":
        found = profile.get("type") or "none"
        yield f"{label} has seccomp profile {found}, not RuntimeDefault (itself or through its pod)"


def _read_only_root(label: str, container: Props, pod_context: Props) -> Iterator[str]:
    if _mapping(container.get("securityContext")).get("readOnlyRootFilesystem") is not True:
        yield f"{label} does not set readOnlyRootFilesystem: true"


def _requests_and_limits(label: str, container: Props, pod_context: Props) -> Iterator[str]:
    resources = _mapping(container.get("resources"))
    for part in ("requests", "limits"):
        given = _mapping(resources.get(part))
        missing = [name for name in ("cpu", "memory") if given.get(name) in (None, "")]
        if missing:
            yield f"{label} has no {' or '.join(missing)} {part}"


def _no_automounted_token(resource: Resource) -> Iterator[str]:
    spec = pod_spec(resource)
    if spec is None:
        yield "it has no pod spec to check"
    elif spec.get("automountServiceAccountToken") is not False:
        yield (
            "its pod spec does not set automountServiceAccountToken: false (a container that "
            "calls the Kubernetes API mounts a projected serviceAccountToken volume instead)"
        )


def _no_load_balancer(resource: Resource) -> Iterator[str]:
    if _mapping(resource.props.get("spec")).get("type") == "LoadBalancer":
        yield "its type is LoadBalancer; traffic comes in through the Ingress or the Gateway"


def _no_external_ips(resource: Resource) -> Iterator[str]:
    addresses = [
        str(address) for address in _items(_mapping(resource.props.get("spec")).get("externalIPs"))
    ]
    if addresses:
        yield f"it claims externalIPs {', '.join(addresses)}"


RULES = (
    Rule(
        "run-as-non-root",
        "Every container runs as a non-root user (runAsNonRoot: true, never runAsUser 0).",
        WORKLOADS,
        _per_container(_runs_as_non_root),
    ),
    Rule(
        "no-privilege-escalation",
        "Every container sets allowPrivilegeEscalation: false and is not privileged.",
        WORKLOADS,
        _per_container(_no_privilege_escalation),
    ),
    Rule(
        "drop-all-capabilities",
        "Every container drops ALL Linux capabilities and adds none back.",
        WORKLOADS,
        _per_container(_drops_every_capability),
    ),
    Rule(
        "seccomp-runtime-default",
        "Every container runs under the RuntimeDefault seccomp profile.",
        WORKLOADS,
        _per_container(_seccomp_runtime_default),
    ),
    Rule(
        "read-only-root-filesystem",
        "Every container's root file system is read-only (writable paths are volumes).",
        WORKLOADS,
        _per_container(_read_only_root),
    ),
    Rule(
        "requests-and-limits",
        "Every container requests and limits both CPU and memory.",
        WORKLOADS,
        _per_container(_requests_and_limits),
    ),
    Rule(
        "no-automounted-service-account-token",
        "No pod gets the service account token mounted automatically; a container that calls "
        "the Kubernetes API mounts a projected token itself.",
        WORKLOADS,
        _no_automounted_token,
    ),
    Rule(
        "no-load-balancer-services",
        "No Service is of type LoadBalancer: traffic enters through the Ingress or the Gateway.",
        SERVICES,
        _no_load_balancer,
    ),
    Rule(
        "no-external-ips",
        "No Service claims externalIPs, which would capture traffic to those addresses.",
        SERVICES,
        _no_external_ips,
    ),
)


def pushes(resources: Sequence[Resource]) -> bool:
    """Whether the stack pushes an image it builds to a registry."""
    return any(
        resource.type in PUSHING_IMAGES and PUSHING_IMAGES[resource.type](resource.props)
        for resource in resources
    )


def _unpinned_images(resources: Sequence[Resource]) -> Iterator[tuple[Resource, str]]:
    if not pushes(resources):
        return
    for resource in resources:
        if resource.type not in WORKLOADS:
            continue
        spec = pod_spec(resource)
        if spec is None:
            yield resource, "it has no pod spec to check"
            continue
        for label, container in containers(spec):
            image = container.get("image")
            if not isinstance(image, str) or not _DIGEST.search(image):
                yield resource, f"{label} runs image {image!r}, not pinned by an @sha256: digest"


STACK_RULES = (
    StackRule(
        "images-pinned-by-digest",
        "On a stack that pushes the images it builds, every container's image is pinned by "
        "its sha256 digest, so a tag moved in the registry never changes what runs.",
        _unpinned_images,
    ),
)
