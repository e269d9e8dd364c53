"""The stack states the largest image of each kind its API pods convert, and warns at preview
when the memory limit cannot convert a phone's photo of some kind."""

from __future__ import annotations

from typing import Any

import pytest
from k8s_objects import kubelet_env, pod_spec

from infra.capacity import largest_images_table
from infra.reference import stack_file_apis
from service.limits import EVERYDAY_PIXELS, describe_limits, largest_images
from service.settings import FetchSettings, ServingSettings

CAPACITY = "cannot convert a 12 MP"


def _capacity_warnings(rendered: Any) -> list[str]:
    return [line for line in rendered.warnings if CAPACITY in line]


def test_the_dev_stack_warns_that_it_cannot_convert_a_12_mp_lossless_webp(dev: Any) -> None:
    assert EVERYDAY_PIXELS == 12_000_000
    assert _capacity_warnings(dev) == [
        "api.resources.limits.memory 512Mi cannot convert a 12 MP lossless WebP with 2 workers "
        "(api.webConcurrency): the largest it converts is 8.0 MP. Give at least 631Mi, "
        "or fewer workers."
    ]


def test_prod_and_gateway_convert_a_12_mp_image_of_every_kind(variant: Any) -> None:
    for name in ("prod", "gateway"):
        assert _capacity_warnings(variant(name)) == [], name


def test_a_smaller_memory_limit_names_every_kind_it_cannot_convert(variant: Any) -> None:
    warnings = _capacity_warnings(variant("api-small-memory"))
    assert [line.split(" with ")[0] for line in warnings] == [
        "api.resources.limits.memory 400Mi cannot convert a 12 MP lossy WebP",
        "api.resources.limits.memory 400Mi cannot convert a 12 MP lossless WebP",
    ]


def test_the_output_names_the_stack_key_that_binds_first(dev: Any, prod: Any) -> None:
    assert dev.outputs["api_largest_images"]["value"] == {
        "JPEG": "50.0 MP (api.maxImagePixels binds first)",
        "PNG": "12.3 MP (api.maxDownloadBytes binds first)",
        "GIF": "26.2 MP (api.maxDownloadBytes binds first)",
        "lossy WebP": "15.6 MP (api.resources.limits.memory binds first)",
        "lossless WebP": "8.0 MP (api.resources.limits.memory binds first)",
    }
    assert prod.outputs["api_largest_images"]["value"]["lossless WebP"] == (
        "16.1 MP (api.maxDownloadBytes binds first)"
    )


@pytest.mark.parametrize("name", ["dev", "prod", "gateway", "api-small-memory"])
def test_the_output_states_what_the_pods_openapi_states(name: str, variant: Any) -> None:
    """The pod's env as the kubelet fills it, read by the API's settings, gives the figures
    its /openapi.json states: the same as the stack output's."""
    run = variant(name)
    obj = run.one("Deployment", "image-api")
    (container,) = pod_spec(obj)["containers"]
    environment = kubelet_env(container, obj["metadata"]["namespace"], lambda n, k: f"{n}-{k}")
    serving, fetch = ServingSettings.from_env(environment), FetchSettings.from_env(environment)
    stated = describe_limits(
        largest_images(
            serving.memory_limit_bytes,
            serving.web_concurrency,
            fetch.max_image_pixels,
            fetch.max_download_bytes,
        )
    )
    output = run.outputs["api_largest_images"]["value"]
    assert len(output) == stated.count(" MP (")
    for kind, figure in output.items():
        assert f"{kind} {figure.split(' (')[0]} (" in stated


def test_the_docs_table_holds_what_each_stack_file_outputs(variant: Any) -> None:
    """docs/api.md's generated table reads the stack files' `api` objects alone; the program
    reads the whole config as Pulumi gives it. Both must come to the same figures."""
    header, _, *rows = largest_images_table(stack_file_apis()).splitlines()
    kinds = [cell.strip() for cell in header.strip("|").split("|")][1:]
    for row in rows:
        name, *cells = (cell.strip() for cell in row.strip("|").split("|"))
        output = variant(name.split(" (")[0]).outputs["api_largest_images"]["value"]
        assert cells == [output[kind].replace(" binds first", "") for kind in kinds], name
