"""Every Kubernetes object the program registers is valid against the strict OpenAPI schemas.

Built-in kinds against Kubernetes' own (kubernetes-validate); HTTPRoutes, which Kubernetes does
not bundle, against the Gateway API v1 schema (gateway_schema).
"""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
from gateway_schema import route_problems
from stack_render import Rendered

OLDEST_SUPPORTED = "1.30.0"
NEWEST_BUNDLED = kubernetes_validate.utils.latest_version()
GATEWAY_KINDS = ("HTTPRoute",)


def _builtin(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] not in GATEWAY_KINDS]


@pytest.mark.parametrize("version", [OLDEST_SUPPORTED, NEWEST_BUNDLED])
def test_every_object_validates_strictly(stack: Rendered, version: str) -> None:
    objects = stack.objects()
    assert len(objects) >= 10
    for obj in _builtin(objects):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} for {version}: {exc.message}")


def test_every_variant_that_runs_validates_strictly(rendered: dict[str, Rendered]) -> None:
    """The variants (namespaceExists, cluster domain, CIDRs, ...) render valid objects too."""
    for name, result in rendered.items():
        if result.error is not None:
            continue
        for obj in _builtin(result.objects()):
            try:
                kubernetes_validate.validate(obj, NEWEST_BUNDLED, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']}: {exc.message}")


def test_newest_bundled_version_is_newer_than_oldest() -> None:
    assert kubernetes_validate.utils.major_minor(NEWEST_BUNDLED) >= "1.37"


def test_objects_carry_api_version_kind_and_namespace(stack: Rendered) -> None:
    namespace = stack.outputs["namespace"]["value"]
    for obj in stack.objects():
        assert obj["apiVersion"]
        assert obj["kind"]
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace, obj["metadata"]


def _routes(rendered: dict[str, Rendered]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, obj)
        for name, result in rendered.items()
        if result.error is None
        for obj in result.of_kind("HTTPRoute")
    ]


def test_every_httproute_validates_strictly_against_gateway_api_v1(
    rendered: dict[str, Rendered],
) -> None:
    routes = _routes(rendered)
    assert len(routes) >= 6
    for (name, route), problems in zip(
        routes, route_problems([route for _, route in routes]), strict=True
    ):
        assert problems == [], f"{name}: HTTPRoute/{route['metadata']['name']}: {problems}"


def test_the_gateway_api_validation_is_strict(variant) -> None:
    """Unknown fields anywhere, a wrong enum, a port out of range: each is refused."""
    route = variant("gateway").one("HTTPRoute", "sitemaps")
    unknown = copy.deepcopy(route)
    unknown["spec"]["rules"][0]["filters"][0]["urlRewrite"]["path"]["replacePrefix"] = "/x"
    unknown["metadata"]["label"] = {"a": "b"}
    wrong_enum = copy.deepcopy(route)
    wrong_enum["spec"]["rules"][0]["matches"][0]["path"]["type"] = "Prefix"
    wrong_port = copy.deepcopy(route)
    wrong_port["spec"]["rules"][0]["backendRefs"][0]["port"] = 70000
    missing_parent_name = copy.deepcopy(route)
    del missing_parent_name["spec"]["parentRefs"][0]["name"]
    problems = route_problems([route, unknown, wrong_enum, wrong_port, missing_parent_name])
    assert problems[0] == []
    assert any("urlRewrite/path/replacePrefix: unknown field" in p for p in problems[1])
    assert any("/metadata/label: unknown field" in p for p in problems[1])
    assert any("path/type: enum" in p for p in problems[2])
    assert any("backendRefs/0/port: maximum" in p for p in problems[3])
    assert any("parentRefs/0: required" in p for p in problems[4])


def test_httproutes_keep_the_crd_rules_the_schema_check_leaves_to_cel(
    rendered: dict[str, Rendered],
) -> None:
    """The CRD's CEL rules (x-kubernetes-validations) that bear on these routes, checked here.

    The generated validator does not run CEL: a path match value starts with '/', and a
    ReplacePrefixMatch rewrite needs exactly one PathPrefix match in its rule.
    """
    for name, route in _routes(rendered):
        for rule in route["spec"]["rules"]:
            for match in rule["matches"]:
                assert match["path"]["value"].startswith("/"), name
            rewrites = [
                item["urlRewrite"]["path"]
                for item in rule.get("filters", [])
                if item["type"] == "URLRewrite"
            ]
            if any(path["type"] == "ReplacePrefixMatch" for path in rewrites):
                assert [m["path"]["type"] for m in rule["matches"]] == ["PathPrefix"], name
            for path in rewrites:
                assert path["replacePrefixMatch"].startswith("/"), name
