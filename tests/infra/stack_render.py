"""Run the real Pulumi program under mocks for one stack file and record what it registers.

Used two ways: as a script in a fresh interpreter (the Pulumi runtime is process-global), and
as a module whose `render()` starts that script and reads back its JSON report.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "kube-image-processing"
SECRET_MARK = "__secret__"
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
MOCK_DIGEST = "sha256:" + "ab" * 32
MOCK_NODE_PORT = 31080


def stack_config(stack: str) -> dict[str, Any]:
    """The `config:` block of Pulumi.<stack>.yaml."""
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    return dict(document.get("config") or {})


def encode_secrets(value: Any) -> Any:
    """Replace Pulumi's in-band secret wrappers with a JSON-friendly marker."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            return {SECRET_MARK: encode_secrets(value.get("value"))}
        return {key: encode_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [encode_secrets(item) for item in value]
    return value


def plain(value: Any) -> Any:
    """`value` with every secret marker replaced by the value it hides."""
    if isinstance(value, dict):
        if set(value) == {SECRET_MARK}:
            return plain(value[SECRET_MARK])
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def integral(value: Any) -> Any:
    """Whole floats back to ints: protobuf carries every number as a double."""
    if isinstance(value, dict):
        return {key: integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [integral(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def is_secret(value: Any) -> bool:
    """Whether `value` is marked secret as a whole."""
    return isinstance(value, dict) and set(value) == {SECRET_MARK}


# --- the script side: runs inside a fresh interpreter ------------------------------------


def _run(arguments: argparse.Namespace) -> dict[str, Any]:
    import pulumi
    from pulumi.runtime import mocks as pulumi_mocks
    from pulumi.runtime import settings
    from pulumi.runtime.stack import Stack, run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    previous: dict[str, dict[str, Any]] = {
        name: json.loads(value) for name, value in arguments.previous
    }
    ignored: dict[str, list[str]] = {}

    class Mocks(pulumi_mocks.Mocks):
        def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict]:
            outputs = dict(args.inputs)
            # An existing resource: for the fields in ignore_changes the engine keeps the
            # inputs (and so the outputs) of the previous state instead of the program's.
            for key, value in previous.get(args.name, {}).items():
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
                        spec["ports"] = [
                            {"nodePort": MOCK_NODE_PORT, **port} for port in spec.get("ports", [])
                        ]
                    outputs["spec"] = spec
            return f"{args.name}-id", outputs

        def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict, list | None]:
            return {}, None

    records: list[dict[str, Any]] = []

    class RecordingMonitor(pulumi_mocks.MockMonitor):
        def RegisterResource(self, request: Any) -> Any:
            from pulumi.runtime import rpc

            ignored[request.name] = list(request.ignoreChanges)
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                state = self.resources[response.urn].state
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
                        "outputs": encode_secrets(state),
                        "ignoreChanges": list(request.ignoreChanges),
                        "replaceOnChanges": list(request.replaceOnChanges),
                        "deleteBeforeReplace": request.deleteBeforeReplace,
                        "additionalSecretOutputs": list(request.additionalSecretOutputs),
                    }
                )
            return response

    warnings: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                warnings.append(record.getMessage())

    logger = logging.getLogger("pulumi-mock-engine")
    logger.addHandler(Collect())
    logger.propagate = False

    mocks = Mocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(
        mocks,
        project=PROJECT,
        stack=arguments.stack,
        preview=arguments.preview,
        logger=logger,
        monitor=monitor,
    )

    config = {key: v if isinstance(v, str) else json.dumps(v) for key, v in _config(arguments)}
    pulumi.runtime.set_all_config(config, secret_keys=[key for key, _ in arguments.secret])

    report: dict[str, Any] = {"resources": records, "outputs": {}, "warnings": warnings}
    try:
        # Exactly what the Python language host does with `main: infra/`.
        _sync_await(run_pulumi_func(lambda: _run_program()))
    except Exception as exc:
        report["error"] = {"type": type(exc).__name__, "message": str(exc)}
        return report
    report["error"] = None
    stack = settings.get_root_resource()
    assert isinstance(stack, Stack)
    for name, value in stack.outputs.items():
        output = pulumi.Output.from_input(value)
        report["outputs"][name] = {
            "value": _sync_await(output.future()),
            "secret": _sync_await(output.is_secret()),
        }
    return report


def _run_program() -> None:
    import runpy

    runpy.run_path("infra", run_name="__main__")


def _config(arguments: argparse.Namespace) -> list[tuple[str, Any]]:
    config: dict[str, Any] = {} if arguments.no_stack_file else stack_config(arguments.stack)
    for key, value in arguments.set:
        if value == "null":
            config.pop(key, None)
        else:
            config[key] = json.loads(value)
    for key, value in arguments.secret:
        config[key] = value
    return list(config.items())


def _pair(text: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    return key, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--out")
    parser.add_argument("--batch", help="a JSON file mapping output paths to argument lists")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--preview", action="store_true")
    parser.add_argument("--no-stack-file", action="store_true")
    parser.add_argument("--set", type=_pair, action="append", default=[], help="key=<json>")
    parser.add_argument("--secret", type=_pair, action="append", default=[], help="key=value")
    parser.add_argument("--env", type=_pair, action="append", default=[], help="NAME=value")
    parser.add_argument(
        "--previous", type=_pair, action="append", default=[], help="name=<json outputs>"
    )
    return parser


def _render_to(arguments: argparse.Namespace, out: str) -> None:
    os.environ.update(dict(arguments.env))
    report = _run(arguments)
    Path(out).write_text(json.dumps(report, indent=1, default=str))


def _batch(batch: dict[str, list[str]], jobs: int) -> int:
    """Import everything once, then fork one child per render, `jobs` at a time."""
    import pulumi  # noqa: F401 - warm the module cache that every child inherits
    import pulumi_docker_build  # noqa: F401
    import pulumi_kubernetes  # noqa: F401
    import pulumi_random  # noqa: F401

    import infra.api
    import infra.sitemaps  # noqa: F401

    parser = _parser()
    running: dict[int, str] = {}
    failures = 0
    pending = list(batch.items())
    while pending or running:
        while pending and len(running) < jobs:
            out, argv = pending.pop(0)
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    _render_to(parser.parse_args(argv), out)
                except BaseException:
                    import traceback

                    traceback.print_exc()
                    code = 1
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            running[pid] = out
        pid, status = os.wait()
        running.pop(pid, None)
        failures += status != 0
    return failures


def main() -> None:
    arguments = _parser().parse_args()
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    if arguments.batch:
        batch = json.loads(Path(arguments.batch).read_text())
        sys.exit(1 if _batch(batch, arguments.jobs) else 0)
    _render_to(arguments, arguments.out)


# --- the test side -----------------------------------------------------------------------


@dataclass
class Rendered:
    """What one run of the program registered, exported and reported."""

    stack: str
    resources: list[dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    warnings: list[str]
    error: dict[str, str] | None
    secrets: dict[str, str] = field(default_factory=dict)

    def kubernetes(self) -> list[dict[str, Any]]:
        """Every registered Kubernetes resource record."""
        return [r for r in self.resources if r["type"].startswith("kubernetes:")]

    def objects(self) -> list[dict[str, Any]]:
        """Every Kubernetes object rebuilt from its mock inputs, secrets unwrapped."""
        return [self.rebuild(record) for record in self.kubernetes()]

    @staticmethod
    def rebuild(record: dict[str, Any]) -> dict[str, Any]:
        obj = integral(plain(record["inputs"]))
        metadata = dict(obj.get("metadata") or {})
        # Auto-named objects get their name from the provider; take it from the mock state.
        metadata.setdefault("name", plain(record["outputs"])["metadata"]["name"])
        obj["metadata"] = metadata
        return obj

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects() if obj["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def record(self, kind: str, name: str) -> dict[str, Any]:
        for record in self.kubernetes():
            if (
                record["type"].endswith(f":{kind}")
                and self.rebuild(record)["metadata"]["name"] == name
            ):
                return record
        raise AssertionError(f"no {kind} named {name}")

    def of_type(self, type_token: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == type_token]


@dataclass(frozen=True)
class Variant:
    """One way to run the program: a stack file plus config overrides and secrets."""

    stack: str = "dev"
    overrides: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    preview: bool = False
    no_stack_file: bool = False
    # Outputs of resources (by logical name) in the state of an earlier `pulumi up`.
    previous: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Environment of the program, as the operator's shell would set it.
    environment: dict[str, str] = field(default_factory=dict)

    def argv(self) -> list[str]:
        argv = ["--stack", self.stack]
        for key, value in self.overrides.items():
            argv += ["--set", f"{PROJECT}:{key}={json.dumps(value)}"]
        for key, value in self.secrets.items():
            argv += ["--secret", f"{PROJECT}:{key}={value}"]
        if self.preview:
            argv.append("--preview")
        if self.no_stack_file:
            argv.append("--no-stack-file")
        for name, outputs in self.previous.items():
            argv += ["--previous", f"{name}={json.dumps(outputs)}"]
        for key, value in self.environment.items():
            argv += ["--env", f"{key}={value}"]
        return argv


def render_all(variants: dict[str, Variant], tmp_dir: Path, jobs: int = 2) -> dict[str, Rendered]:
    """Render every variant in one interpreter that forks a child per variant."""
    outs = {name: tmp_dir / f"{name}.json" for name in variants}
    batch_file = tmp_dir / "batch.json"
    batch_file.write_text(
        json.dumps({str(outs[name]): variant.argv() for name, variant in variants.items()})
    )
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--batch",
        str(batch_file),
        "--jobs",
        str(jobs),
    ]
    completed = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    results: dict[str, Rendered] = {}
    for name, variant in variants.items():
        if not outs[name].exists():
            raise AssertionError(f"rendering {name} failed:\n{completed.stderr[-4000:]}")
        report = json.loads(outs[name].read_text())
        results[name] = Rendered(
            stack=variant.stack,
            resources=report["resources"],
            outputs=report["outputs"],
            warnings=report["warnings"],
            error=report["error"],
            secrets=dict(variant.secrets),
        )
    return results


def render(variant: Variant, tmp_dir: Path) -> Rendered:
    """Render one variant on its own."""
    return render_all({"single": variant}, tmp_dir)["single"]


if __name__ == "__main__":
    main()
