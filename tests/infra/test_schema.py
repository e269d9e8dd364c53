"""Every Kubernetes object the program registers is valid against the strict OpenAPI schemas."""

from __future__ import annotations

import kubernetes_validate
import pytest
from stack_render import Rendered

OLDEST_SUPPORTED = "1.30.0"
NEWEST_BUNDLED = kubernetes_validate.utils.latest_version()


@pytest.mark.parametrize("version", [OLDEST_SUPPORTED, NEWEST_BUNDLED])
def test_every_object_validates_strictly(stack: Rendered, version: str) -> None:
    objects = stack.objects()
    assert len(objects) >= 10
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} for {version}: {exc.message}")


def test_every_variant_that_runs_validates_strictly(rendered: dict[str, Rendered]) -> None:
    """The variants (namespaceExists, cluster domain, CIDRs, ...) render valid objects too."""
    for name, result in rendered.items():
        if result.error is not None:
            continue
        for obj in result.objects():
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
