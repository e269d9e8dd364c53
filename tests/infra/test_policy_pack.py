"""The policy pack's rules (policy/baseline.py) on what the program renders, and on resources
built to break each rule.

The rules are plain functions, called here without the Pulumi CLI and without pulumi-policy,
whose dependencies are locked apart (policy/uv.lock). The last test runs policy/__main__.py's
policies inside the pack's own virtualenv (`make policy`), through pulumi_policy's own
argument objects, without constructing the PolicyPack (which serves the engine for ever).
No Pulumi engine runs here: what reaches the rules is what the program registers under mocks.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from stack_render import ROOT, Rendered

from infra.offline import plain
from policy.baseline import (
    POD_SPEC_PATHS,
    RULES,
    SERVICES,
    STACK_RULES,
    WORKLOADS,
    Resource,
    Rule,
    pushes,
)

STACKS = ("dev", "prod", "gateway")
POLICY_PYTHON = ROOT / "policy" / ".venv" / "bin" / "python"
RULES_BY_NAME = {rule.name: rule for rule in RULES}
[DIGEST_RULE] = STACK_RULES
TAGGED_IMAGE = "registry.example.com/platform/kube-image-processing:ctx-0123456789abcdef"


def inputs(stack: Rendered) -> list[Resource]:
    """Every resource with the inputs the engine's per-resource check is given."""
    return [
        Resource(r["type"], r["name"], plain(r["inputs"]), r["urn"])
        for r in stack.resources
        if r["custom"]
    ]


def outputs(stack: Rendered) -> list[Resource]:
    """Every resource with its outputs, as the engine's stack check is given them."""
    return [
        Resource(r["type"], r["name"], plain(r["outputs"]), r["urn"])
        for r in stack.resources
        if r["custom"]
    ]


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest, variant: Callable[[str], Rendered]) -> Rendered:
    return variant(request.param)


@pytest.fixture
def prod_api(prod: Rendered) -> Resource:
    """The prod stack's API Deployment: the resource the cases below break."""
    [deployment] = [r for r in inputs(prod) if r.type == "kubernetes:apps/v1:Deployment"]
    return deployment


def test_every_rule_accepts_the_stacks_own_resources(stack: Rendered) -> None:
    resources = inputs(stack)
    for rule in RULES:
        checked = [r for r in resources if r.type in rule.types]
        assert checked, f"{stack.stack}: nothing for {rule.name} to check"
        assert [m for r in checked for m in rule.violations(r)] == []
    kinds = sorted({r.kind for r in resources if r.type in WORKLOADS})
    assert {"CronJob", "Deployment"} <= set(kinds), kinds


def test_only_stacks_that_push_need_digests_and_theirs_have_them(stack: Rendered) -> None:
    resources = outputs(stack)
    assert pushes(resources) == (stack.stack != "dev")  # dev builds into minikube's Docker
    assert DIGEST_RULE.violations(resources) == []


def _with_pod_spec(resource: Resource, change: Callable[[dict[str, Any]], None]) -> Resource:
    """A copy of a workload with `change` made to its pod spec."""
    props = copy.deepcopy(dict(resource.props))
    spec: Any = props
    for key in POD_SPEC_PATHS[resource.type]:
        spec = spec[key]
    change(spec)
    return Resource(resource.type, resource.name, props)


def _as(type_token: str, deployment: Resource) -> Resource:
    """The Deployment's pod template under another workload type."""
    template = copy.deepcopy(dict(deployment.props["spec"]["template"]))
    metadata = {"name": "copy", "namespace": "kube-image-processing"}
    specs: dict[str, dict[str, Any]] = {
        "kubernetes:core/v1:Pod": template["spec"],
        "kubernetes:batch/v1:Job": {"template": template},
        "kubernetes:batch/v1:CronJob": {
            "schedule": "0 * * * *",
            "jobTemplate": {"spec": {"template": template}},
        },
    }
    selector = deployment.props["spec"]["selector"]
    spec = specs.get(type_token, {"selector": selector, "template": template})
    return Resource(
        type_token,
        f"{type_token.rsplit(':', 1)[-1].lower()}-copy",
        {"metadata": metadata, "spec": spec},
    )


@pytest.mark.parametrize("type_token", sorted(WORKLOADS))
def test_every_workload_type_is_checked_where_it_keeps_its_pod_spec(
    type_token: str, prod_api: Resource
) -> None:
    good = _as(type_token, prod_api)
    assert [m for rule in RULES for m in rule.violations(good)] == []
    bad = _with_pod_spec(good, lambda spec: spec.update(automountServiceAccountToken=True))
    assert RULES_BY_NAME["no-automounted-service-account-token"].violations(bad)


def _set_container(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        spec["containers"][0]["securityContext"].update(fields)

    return change


def _without(*path: str) -> Callable[[dict[str, Any]], None]:
    """Remove the key at `path`, starting from the pod spec ("0" is the first container)."""

    def change(spec: dict[str, Any]) -> None:
        node: Any = spec
        for key in path[:-1]:
            node = node["containers"][0] if key == "0" else node[key]
        node.pop(path[-1], None)

    return change


def _both(*changes: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        for one in changes:
            one(spec)

    return change


def _with_init_container(spec: dict[str, Any]) -> None:
    init = copy.deepcopy(spec["containers"][0])
    init["name"] = "migrate"
    init["securityContext"]["readOnlyRootFilesystem"] = False
    spec["initContainers"] = [init]


# Each case: the rule it breaks, the change to the prod API Deployment's pod spec, and what the
# message says. Each change breaks that rule alone.
POD_CASES: dict[str, tuple[str, Callable[[dict[str, Any]], None], str]] = {
    "runAsNonRoot false": (
        "run-as-non-root",
        _set_container(runAsNonRoot=False),
        "container api does not set runAsNonRoot: true",
    ),
    "runAsNonRoot nowhere": (
        "run-as-non-root",
        _both(
            _without("0", "securityContext", "runAsNonRoot"),
            _without("securityContext", "runAsNonRoot"),
        ),
        "does not set runAsNonRoot: true",
    ),
    "user 0 from the pod": (
        "run-as-non-root",
        lambda spec: spec["securityContext"].update(runAsUser=0),
        "container api runs as user 0",
    ),
    "privilege escalation allowed": (
        "no-privilege-escalation",
        _set_container(allowPrivilegeEscalation=True),
        "does not set allowPrivilegeEscalation: false",
    ),
    "privilege escalation unset": (
        "no-privilege-escalation",
        _without("0", "securityContext", "allowPrivilegeEscalation"),
        "does not set allowPrivilegeEscalation: false",
    ),
    "privileged": (
        "no-privilege-escalation",
        _set_container(privileged=True),
        "container api is privileged",
    ),
    "one capability dropped": (
        "drop-all-capabilities",
        _set_container(capabilities={"drop": ["NET_RAW"]}),
        "does not drop ALL capabilities",
    ),
    "a capability added": (
        "drop-all-capabilities",
        _set_container(capabilities={"drop": ["ALL"], "add": ["NET_ADMIN"]}),
        "adds capabilities NET_ADMIN",
    ),
    "seccomp unconfined": (
        "seccomp-runtime-default",
        _set_container(seccompProfile={"type": "Unconfined"}),
        "has seccomp profile Unconfined, not RuntimeDefault",
    ),
    "seccomp nowhere": (
        "seccomp-runtime-default",
        _both(
            _without("0", "securityContext", "seccompProfile"),
            _without("securityContext", "seccompProfile"),
        ),
        "has seccomp profile none, not RuntimeDefault",
    ),
    "writable root": (
        "read-only-root-filesystem",
        _set_container(readOnlyRootFilesystem=False),
        "container api does not set readOnlyRootFilesystem: true",
    ),
    "writable root in an init container": (
        "read-only-root-filesystem",
        _with_init_container,
        "init container migrate does not set readOnlyRootFilesystem: true",
    ),
    "no CPU limit": (
        "requests-and-limits",
        _without("0", "resources", "limits", "cpu"),
        "container api has no cpu limits",
    ),
    "no requests": (
        "requests-and-limits",
        _without("0", "resources", "requests"),
        "container api has no cpu or memory requests",
    ),
    "token automounted": (
        "no-automounted-service-account-token",
        lambda spec: spec.update(automountServiceAccountToken=True),
        "does not set automountServiceAccountToken: false",
    ),
    "token by default": (
        "no-automounted-service-account-token",
        _without("automountServiceAccountToken"),
        "does not set automountServiceAccountToken: false",
    ),
}


def _assert_refused_by_only(rule: Rule, resource: Resource, fragment: str) -> None:
    """`rule` refuses `resource` with messages naming both, every other rule accepts it."""
    messages = rule.violations(resource)
    assert messages, f"{rule.name} accepted {resource.name}"
    for message in messages:
        assert message.startswith(f"{resource.kind} {resource.name} breaks {rule.name}: "), message
    assert any(fragment in message for message in messages), messages
    for other in RULES:
        if other is not rule:
            assert other.violations(resource) == [], other.name


@pytest.mark.parametrize("case", POD_CASES)
def test_each_workload_rule_refuses_a_pod_spec_that_breaks_it(
    case: str, prod_api: Resource
) -> None:
    rule_name, change, fragment = POD_CASES[case]
    _assert_refused_by_only(RULES_BY_NAME[rule_name], _with_pod_spec(prod_api, change), fragment)


def test_a_workload_without_a_pod_spec_is_refused_by_every_workload_rule() -> None:
    resource = Resource("kubernetes:apps/v1:Deployment", "empty", {"metadata": {"name": "empty"}})
    for rule in RULES:
        if rule.types == WORKLOADS:
            assert rule.violations(resource) == [
                f"Deployment empty breaks {rule.name}: it has no pod spec to check"
            ]


SERVICE_CASES: dict[str, tuple[str, dict[str, Any], str]] = {
    "a LoadBalancer": (
        "no-load-balancer-services",
        {"type": "LoadBalancer"},
        "its type is LoadBalancer",
    ),
    "external IPs": (
        "no-external-ips",
        {"externalIPs": ["203.0.113.7"]},
        "externalIPs 203.0.113.7",
    ),
}


@pytest.mark.parametrize("case", SERVICE_CASES)
def test_each_service_rule_refuses_a_service_that_breaks_it(case: str, prod: Rendered) -> None:
    rule_name, fields, fragment = SERVICE_CASES[case]
    [service] = [
        r for r in inputs(prod) if r.type in SERVICES and r.props["spec"].get("type") == "NodePort"
    ]
    props = copy.deepcopy(dict(service.props))
    props["spec"].update(fields)
    _assert_refused_by_only(
        RULES_BY_NAME[rule_name], Resource(service.type, service.name, props), fragment
    )


def _retagged(resources: list[Resource], image: str) -> list[Resource]:
    """The stack with its API Deployment's container on `image`."""

    def retag(spec: dict[str, Any]) -> None:
        spec["containers"][0]["image"] = image

    return [
        _with_pod_spec(r, retag) if r.type == "kubernetes:apps/v1:Deployment" else r
        for r in resources
    ]


def test_a_stack_that_pushes_refuses_an_image_by_tag(prod: Rendered) -> None:
    resources = _retagged(outputs(prod), TAGGED_IMAGE)
    [(resource, message)] = DIGEST_RULE.violations(resources)
    assert resource.type == "kubernetes:apps/v1:Deployment"
    assert message == (
        f"Deployment {resource.name} breaks images-pinned-by-digest: container api runs image "
        f"{TAGGED_IMAGE!r}, not pinned by an @sha256: digest"
    )


def test_a_stack_that_does_not_push_runs_its_images_by_tag(dev: Rendered) -> None:
    resources = outputs(dev)
    [api] = [r for r in resources if r.type == "kubernetes:apps/v1:Deployment"]
    assert "@sha256:" not in api.props["spec"]["template"]["spec"]["containers"][0]["image"]
    assert DIGEST_RULE.violations(_retagged(resources, TAGGED_IMAGE)) == []


def test_an_image_resource_of_the_docker_provider_pushes_unless_told_not_to(dev: Rendered) -> None:
    resources = _retagged(outputs(dev), TAGGED_IMAGE)
    classic = Resource("docker:index/image:Image", "legacy", {"imageName": TAGGED_IMAGE})
    assert DIGEST_RULE.violations([*resources, classic])
    skipped = Resource(classic.type, classic.name, {**classic.props, "skipPush": True})
    assert DIGEST_RULE.violations([*resources, skipped]) == []


class _UnknownValueError(Exception):
    """Stands in for pulumi_policy's UnknownValueError (a value a preview cannot know)."""


class _Preview(Mapping[str, Any]):
    """Stands in for pulumi_policy's read-only view: reading `unknown` raises."""

    def __init__(self, values: Mapping[str, Any], unknown: str) -> None:
        self._values, self._unknown = dict(values), unknown

    def __getitem__(self, key: str) -> Any:
        if key == self._unknown:
            raise _UnknownValueError(key)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def test_a_value_a_preview_cannot_know_is_never_taken_as_compliant(prod_api: Resource) -> None:
    def unknown(spec: dict[str, Any]) -> None:
        context = spec["containers"][0]["securityContext"]
        spec["containers"][0]["securityContext"] = _Preview(context, "runAsNonRoot")

    with pytest.raises(_UnknownValueError):
        RULES_BY_NAME["run-as-non-root"].violations(_with_pod_spec(prod_api, unknown))


def _given(resource: Resource) -> dict[str, Any]:
    return {
        "type": resource.type,
        "name": resource.name,
        "urn": resource.urn,
        "props": resource.props,
    }


@pytest.mark.skipif(
    not POLICY_PYTHON.exists(), reason="the policy pack's virtualenv is missing: run `make policy`"
)
def test_the_pack_wraps_every_rule_as_a_mandatory_policy(
    prod: Rendered, prod_api: Resource
) -> None:
    """policy/__main__.py's policies, run by pulumi_policy itself on the same resources."""
    broken = [_with_pod_spec(prod_api, change) for _, change, _ in POD_CASES.values()]
    unknown_sentinel = "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7"  # pulumi_policy's unknown boolean
    unknown = _with_pod_spec(prod_api, _set_container(runAsNonRoot=unknown_sentinel))
    resources = [*inputs(prod), *broken, unknown]
    stacks = [outputs(prod), _retagged(outputs(prod), TAGGED_IMAGE)]
    given = {
        "resources": [_given(r) for r in resources],
        "stacks": [[_given(r) for r in stack] for stack in stacks],
    }
    completed = subprocess.run(
        [str(POLICY_PYTHON), str(ROOT / "tests" / "infra" / "policy_probe.py")],
        input=json.dumps(given),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = {entry["name"]: entry for entry in json.loads(completed.stdout)}
    assert list(report) == [rule.name for rule in (*RULES, *STACK_RULES)]
    assert {entry["enforcement"] for entry in report.values()} == {"mandatory"}
    for rule in RULES:
        entry = report[rule.name]
        assert entry["kind"] == "ResourceValidationPolicy"
        *results, last = entry["results"]
        expected = [{"messages": [[m, None] for m in rule.violations(r)]} for r in resources[:-1]]
        assert results == expected, rule.name
        if rule.name == "run-as-non-root":
            assert "unknown" in last  # reported by the engine as not checkable in a preview
    entry = report[DIGEST_RULE.name]
    assert entry["kind"] == "StackValidationPolicy"
    assert entry["results"] == [
        {"messages": [[m, r.urn] for r, m in DIGEST_RULE.violations(stack)]} for stack in stacks
    ]
    assert entry["results"][1]["messages"]
