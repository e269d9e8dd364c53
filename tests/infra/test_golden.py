"""The dev, prod and gateway stacks render exactly the committed golden copies.

Keys are sorted: the mocks carry objects as protobuf Structs, whose maps have no order.

A refactoring of the program or of its config must not change what a stack deploys. A change
made on purpose regenerates the copies, and the diff then shows every object it touches:

    GOLDEN_UPDATE=1 .venv/bin/pytest tests/infra/test_golden.py
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from manifests import documents
from stack_render import Rendered

from infra.offline import plain

GOLDEN = Path(__file__).resolve().parent / "golden"
# The image tag follows the build context's content, so any change to service/ moves it.
_CONTEXT_TAG = re.compile(r":ctx-[0-9a-f]{16}")


def _normalised(text: str) -> str:
    return _CONTEXT_TAG.sub(":ctx-<context digest>", text)


def _pulumi_side(run: Rendered) -> dict[str, Any]:
    """What the manifests do not show: resource options, outputs and which are secret."""
    options = {}
    for record in run.resources:
        chosen = {
            key: record[key]
            for key in ("ignoreChanges", "replaceOnChanges", "deleteBeforeReplace")
            if record[key]
        }
        if chosen:
            options[record["urn"].split("::", 2)[2]] = chosen
    outputs = {
        name: {"value": plain(output["value"]), "secret": output["secret"]}
        for name, output in sorted(run.outputs.items())
    }
    return {"resourceOptions": options, "outputs": outputs}


def _rendered_text(run: Rendered) -> dict[str, str]:
    return {
        f"{run.stack}.yaml": yaml.safe_dump_all(documents(run), sort_keys=True),
        f"{run.stack}.pulumi.yaml": yaml.safe_dump(_pulumi_side(run), sort_keys=True),
    }


@pytest.mark.parametrize("name", ["dev", "prod", "gateway"])
def test_the_stack_renders_its_golden_copy(name: str, variant: Any) -> None:
    run: Rendered = variant(name)
    for file_name, text in _rendered_text(run).items():
        path = GOLDEN / file_name
        actual = _normalised(text)
        if os.environ.get("GOLDEN_UPDATE") == "1":
            path.write_text(actual)
        assert path.exists(), f"{path} is missing: run with GOLDEN_UPDATE=1 to write it"
        assert actual == path.read_text(), (
            f"{name}: the rendered stack differs from {path.relative_to(GOLDEN.parents[2])}; "
            "if the change is on purpose, rerun with GOLDEN_UPDATE=1 and commit the diff"
        )
