"""The largest image of each kind the API's pods convert, stated by the stack.

The running API states the same figures in /openapi.json: both come from service.limits,
given the settings the stack gives its pods.
"""

from __future__ import annotations

from infra.config.api import ApiConfig
from infra.kinds import parse_quantity
from service.limits import (
    DOWNLOAD_LIMIT,
    EVERYDAY_PIXELS,
    MEMORY_LIMIT,
    MIB,
    PIXEL_LIMIT,
    Largest,
    largest_images,
    memory_to_convert,
)


def _key(field: str) -> str:
    return f"api.{ApiConfig.model_fields[field].alias}"


# The stack key that sets each limit (the pod's MEMORY_LIMIT_BYTES is its container's limit).
LIMIT_KEYS = {
    PIXEL_LIMIT: _key("max_image_pixels"),
    DOWNLOAD_LIMIT: _key("max_download_bytes"),
    MEMORY_LIMIT: "api.resources.limits.memory",
}


def largest_images_of(config: ApiConfig) -> list[Largest]:
    """service.limits.largest_images for the pods this config makes."""
    return largest_images(
        int(parse_quantity(config.resources.limits.memory)),
        config.web_concurrency,
        config.max_image_pixels,
        config.max_download_bytes,
    )


def largest_images_output(config: ApiConfig) -> dict[str, str]:
    """The stack output: each kind's largest photo-like image, and the key that binds first."""
    return {
        item.name: f"{item.megapixels} ({LIMIT_KEYS[item.binding]} binds first)"
        for item in largest_images_of(config)
    }


def everyday_image_warnings(config: ApiConfig) -> list[str]:
    """One line for each kind of which the memory limit cannot convert a phone's photo."""
    memory, workers = config.resources.limits.memory, config.web_concurrency
    everyday = f"{EVERYDAY_PIXELS / 1e6:.0f} MP"
    return [
        f"{LIMIT_KEYS[MEMORY_LIMIT]} {memory} cannot convert a {everyday} {item.name} with "
        f"{workers} worker{'s' * (workers != 1)} ({_key('web_concurrency')}): the largest it "
        f"converts is {item.megapixels}. Give at least "
        f"{memory_to_convert(item.kind, EVERYDAY_PIXELS, workers)}Mi, or fewer workers."
        for item in largest_images_of(config)
        if item.binding == MEMORY_LIMIT and item.pixels < EVERYDAY_PIXELS
    ]


def largest_images_table(stacks: dict[str, ApiConfig]) -> str:
    """docs/api.md's table: each stack file's largest image of each kind, and the key that binds."""
    rows: list[str] = []
    for name, config in stacks.items():
        found = largest_images_of(config)
        if not rows:
            rows += ["| stack | " + " | ".join(item.name for item in found) + " |"]
            rows += ["| --- " * (len(found) + 1) + "|"]
        settings = (
            f"{config.resources.limits.memory}, {config.web_concurrency} workers, "
            f"{config.max_image_pixels / 1e6:g} MP, {config.max_download_bytes / MIB:g} MiB"
        )
        cells = [f"{item.megapixels} ({LIMIT_KEYS[item.binding]})" for item in found]
        rows.append(f"| {name} ({settings}) | " + " | ".join(cells) + " |")
    return "\n".join(rows)
