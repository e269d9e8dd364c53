"""Run the real Pulumi program under mocks for one stack file and record what it registers.

Used two ways: as a script in a fresh interpreter (`python -m tests.infra.stack_render`, as
the Pulumi runtime is process-global), and as a module whose `render()` starts that script and
reads back its JSON report. The engine itself is infra/offline.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.offline import (
    SECRET_MARK,
    kubernetes_object,
    run_program,
    stack_config_values,
)

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "kube-image-processing"


def stack_config(stack: str) -> dict[str, Any]:
    """The `config:` block of Pulumi.<stack>.yaml."""
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    return dict(document.get("config") or {})


def is_secret(value: Any) -> bool:
    """Whether `value` is marked secret as a whole."""
    return isinstance(value, dict) and set(value) == {SECRET_MARK}


# --- the script side: runs inside a fresh interpreter ------------------------------------


def _run(arguments: argparse.Namespace) -> dict[str, Any]:
    config = stack_config_values(dict(_config(arguments)))
    previous = {name: json.loads(value) for name, value in arguments.previous}
    secret_keys = [key for key, _ in arguments.secret]
    return run_program(
        arguments.stack, config, secret_keys, preview=arguments.preview, previous=previous
    )


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
        return kubernetes_object(record)

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
        "-m",
        "tests.infra.stack_render",
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
