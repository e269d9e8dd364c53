"""Runs the policy pack's policies on resources, inside the pack's own virtualenv.

    policy/.venv/bin/python tests/infra/policy_probe.py < resources.json

Reads {"resources": [{"type", "name", "urn", "props"}], "stacks": [[the same, with each
resource's outputs], ...]} and prints, for every policy of policy/__main__.py's `policies()`, its kind, its enforcement level
and what it reported, through pulumi_policy's own argument objects and its read-only views of
the inputs (the ones that raise on a value unknown during a preview). It imports the pack
under another name than __main__, so no PolicyPack is constructed (that starts a server and
never returns). Only the standard library, pulumi_policy and the pack are imported here.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

PACK = Path(__file__).resolve().parents[2] / "policy"


def _pack() -> Any:
    sys.path.insert(0, str(PACK))  # as `python -m pulumi.policy` runs the pack's directory
    spec = importlib.util.spec_from_file_location(
        "kube_image_processing_policy", PACK / "__main__.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def _report(policy: Any, resource: dict[str, Any]) -> dict[str, Any]:
    messages: list[list[str | None]] = []
    args = ResourceValidationArgs(
        resource["type"],
        unknown_checking_proxy(resource["props"]),
        resource["urn"],
        resource["name"],
        _options(),
        None,
    )
    try:
        policy.validate(args, lambda message, urn=None: messages.append([message, urn]))
    except UnknownValueError as error:
        return {"unknown": error.message}
    return {"messages": messages}


def _report_stack(policy: Any, resources: list[dict[str, Any]]) -> dict[str, Any]:
    messages: list[list[str | None]] = []
    args = StackValidationArgs(
        [
            PolicyResource(
                r["type"],
                unknown_checking_proxy(r["props"]),
                r["urn"],
                r["name"],
                _options(),
                None,
                None,
                [],
                {},
            )
            for r in resources
        ]
    )
    try:
        policy.validate(args, lambda message, urn=None: messages.append([message, urn]))
    except UnknownValueError as error:
        return {"unknown": error.message}
    return {"messages": messages}


def main() -> None:
    given = json.load(sys.stdin)
    report = []
    for policy in _pack().policies():
        entry: dict[str, Any] = {
            "name": policy.name,
            "kind": type(policy).__name__,
            "enforcement": policy.enforcement_level.value,
        }
        if isinstance(policy, ResourceValidationPolicy):
            entry["results"] = [_report(policy, resource) for resource in given["resources"]]
        elif isinstance(policy, StackValidationPolicy):
            entry["results"] = [_report_stack(policy, stack) for stack in given["stacks"]]
        report.append(entry)
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
