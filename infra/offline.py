"""The Pulumi program run offline, under Pulumi's mocks: what a stack would register.

No cluster, Docker or Pulumi CLI is involved. The program runs exactly as the Python language
host runs it (`main: infra/`), so a config error stops it here as it would stop `pulumi up`.
The Pulumi runtime is process-wide: run one program per process.
"""

from __future__ import annotations

import json
import logging
import runpy
from collections.abc import Iterable, Mapping
from typing import Any

from infra.config import PROJECT

MOCK_DIGEST = "sha256:" + "ab" * 32
MOCK_NODE_PORT = 31080
SECRET_MARK = "__secret__"  # noqa: S105 - a marker, not a password
REDACTED = "<redacted>"
# Pulumi's in-band marker of a secret value in the properties the engine receives.
_SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"  # noqa: S105
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105
# Install order, as Helm uses it: what others refer to comes first.
KIND_ORDER = (
    "Namespace",
    "NetworkPolicy",
    "ServiceAccount",
    "Secret",
    "Role",
    "RoleBinding",
    "Service",
    "PodDisruptionBudget",
    "StatefulSet",
    "Deployment",
    "CronJob",
    "Ingress",
    "HTTPRoute",
)


def encode_secrets(value: Any) -> Any:
    """Replace Pulumi's in-band secret wrappers with a JSON-friendly marker."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG_KEY) == _SECRET_SIG:
            return {SECRET_MARK: encode_secrets(value.get("value"))}
        return {key: encode_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [encode_secrets(item) for item in value]
    return value


def run_program(
    stack: str,
    config: Mapping[str, str],
    secret_keys: Iterable[str] = (),
    *,
    preview: bool = False,
    previous: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run `infra/` for `stack` with `config` (full keys, string values, as the engine passes
    them); report the resources it registered, its outputs, warnings and error.

    `previous` holds, by logical name, the outputs of resources of an earlier `pulumi up`:
    their fields in ignore_changes keep those values, as the engine keeps them.
    """
    import pulumi
    from pulumi.runtime import mocks, rpc, settings
    from pulumi.runtime.stack import Stack, run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    earlier = previous or {}
    ignored: dict[str, list[str]] = {}
    records: list[dict[str, Any]] = []
    warnings: list[str] = []

    class Mocks(mocks.Mocks):
        def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict]:
            outputs = dict(args.inputs)
            for key, value in earlier.get(args.name, {}).items():
                if key in ignored.get(args.name, []):
                    outputs[key] = value
            if args.typ == "random:index/randomPassword:RandomPassword":
                outputs["result"] = f"mock-generated-{args.name}"
            elif args.typ == "docker-build:index:Image":
                tags = outputs.get("tags") or []
                outputs["digest"] = MOCK_DIGEST
                outputs["ref"] = f"{tags[0]}@{MOCK_DIGEST}" if outputs.get("push") else tags[0]
            elif args.typ.startswith("kubernetes:"):
                metadata = dict(outputs.get("metadata") or {})
                # pulumi-kubernetes auto-names objects without a name as <logical>-<random>.
                metadata.setdefault("name", f"{args.name}-a1b2c3d4")
                outputs["metadata"] = metadata
                if args.typ == "kubernetes:core/v1:Service":
                    spec = dict(outputs.get("spec") or {})
                    if spec.get("type") == "NodePort":
                        ports = spec.get("ports", [])
                        spec["ports"] = [{"nodePort": MOCK_NODE_PORT, **port} for port in ports]
                    outputs["spec"] = spec
            return f"{args.name}-id", outputs

        def call(self, args: mocks.MockCallArgs) -> tuple[dict, list | None]:
            return {}, None

    class RecordingMonitor(mocks.MockMonitor):
        def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method's name
            ignored[request.name] = list(request.ignoreChanges)
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                records.append(
                    {
                        "urn": response.urn,
                        "type": request.type,
                        "name": request.name,
                        "custom": request.custom,
                        "parent": request.parent,
                        "provider": request.provider,
                        "providers": dict(request.providers),
                        "inputs": encode_secrets(rpc.deserialize_properties(request.object)),
                        "outputs": encode_secrets(self.resources[response.urn].state),
                        "ignoreChanges": list(request.ignoreChanges),
                        "replaceOnChanges": list(request.replaceOnChanges),
                        "deleteBeforeReplace": request.deleteBeforeReplace,
                        "additionalSecretOutputs": list(request.additionalSecretOutputs),
                    }
                )
            return response

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                warnings.append(record.getMessage())

    logger = logging.getLogger("pulumi-mock-engine")
    logger.addHandler(Collect())
    logger.propagate = False
    engine = Mocks()
    pulumi.runtime.set_mocks(
        engine,
        project=PROJECT,
        stack=stack,
        preview=preview,
        logger=logger,
        monitor=RecordingMonitor(engine),
    )
    pulumi.runtime.set_all_config(dict(config), secret_keys=list(secret_keys))
    report: dict[str, Any] = {"resources": records, "outputs": {}, "warnings": warnings}
    try:
        # Exactly what the Python language host does with `main: infra/`.
        _sync_await(run_pulumi_func(_run_main))
    except Exception as error:
        report["error"] = {"type": type(error).__name__, "message": str(error)}
        return report
    report["error"] = None
    root = settings.get_root_resource()
    assert isinstance(root, Stack)
    for name, value in root.outputs.items():
        output = pulumi.Output.from_input(value)
        report["outputs"][name] = {
            "value": _sync_await(output.future()),
            "secret": _sync_await(output.is_secret()),
        }
    return report


def _run_main() -> None:
    runpy.run_path("infra", run_name="__main__")


def plain(value: Any) -> Any:
    """`value` with every secret marker replaced by the value it hides."""
    if isinstance(value, dict):
        if set(value) == {SECRET_MARK}:
            return plain(value[SECRET_MARK])
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def redacted(value: Any, secret: bool = False) -> Any:
    """`value` with what is marked secret replaced by REDACTED, keeping the keys of maps."""
    if isinstance(value, dict):
        if set(value) == {SECRET_MARK}:
            return redacted(value[SECRET_MARK], secret=True)
        return {key: redacted(item, secret) for key, item in value.items()}
    if isinstance(value, list):
        return [redacted(item, secret) for item in value]
    return REDACTED if secret else value


def integral(value: Any) -> Any:
    """Whole floats back to ints: protobuf carries every number as a double."""
    if isinstance(value, dict):
        return {key: integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [integral(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def kubernetes_object(record: Mapping[str, Any], reveal: bool = True) -> dict[str, Any]:
    """The Kubernetes object a resource record stands for, as the provider would send it."""
    inputs = record["inputs"]
    obj = integral(plain(inputs) if reveal else plain(redacted(inputs)))
    metadata = dict(obj.get("metadata") or {})
    # Auto-named objects get their name from the provider; take it from the mock state.
    metadata.setdefault("name", plain(record["outputs"])["metadata"]["name"])
    head = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": metadata}
    return {**head, **obj, **head}


def manifests(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every Kubernetes object of one run, secrets redacted, in install order."""
    objects = [
        kubernetes_object(record, reveal=False)
        for record in report["resources"]
        if record["type"].startswith("kubernetes:")
    ]

    def order(obj: dict[str, Any]) -> tuple[int, str, str]:
        kind = obj["kind"]
        rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
        return rank, kind, obj["metadata"]["name"]

    return sorted(objects, key=order)


def stack_config_values(stack_file_config: Mapping[str, Any]) -> dict[str, str]:
    """A stack file's `config:` as the engine passes it: objects as JSON, scalars as text."""
    return {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in stack_file_config.items()
    }
