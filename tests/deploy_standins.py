"""Stand-ins for minikube, docker, pulumi and curl, which cannot run here.

Installed under each tool's name (see `install`), the program acts like the real command for the
few subcommands `make deploy` uses and appends its argv and environment to STANDIN_LOG.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

TOOLS = ("minikube", "docker", "pulumi", "curl")
MINIKUBE_IP = "192.168.49.2"
API_URL = f"http://{MINIKUBE_IP}:31080/"
DOCKER_VERSION = "27.4.1"
# What `pulumi stack init` writes into a stack file that has no salt yet.
NEW_SALT = "v1:c3RhbmRpbjA=:v1:bm90LWEtcmVhbC1ub25jZQ==:c3RhbmQtaW4tY2hlY2s="


def install(bin_dir: Path, tools: tuple[str, ...] = TOOLS) -> None:
    """Write one executable per tool into `bin_dir`, each running this file."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in tools:
        path = bin_dir / tool
        path.write_text(
            f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
            f"import deploy_standins\nsys.exit(deploy_standins.main({tool!r}))\n"
        )
        path.chmod(0o755)


def _state() -> Path:
    return Path(os.environ["STANDIN_STATE"])


def _minikube(argv: list[str]) -> int:
    if argv[:1] == ["status"]:
        print(os.environ.get("STANDIN_MINIKUBE_HOST", "Running"))
        return 0 if os.environ.get("STANDIN_MINIKUBE_HOST", "Running") == "Running" else 7
    if argv[:1] == ["docker-env"]:
        if os.environ.get("STANDIN_MINIKUBE_RUNTIME", "docker") != "docker":
            print(
                "X Exiting due to MK_USAGE: The docker-env command is only compatible with the "
                '"docker" runtime, but this cluster was configured to use the "containerd" runtime.',
                file=sys.stderr,
            )
            return 14
        certs = os.environ["STANDIN_CERT_PATH"]
        print(
            'export DOCKER_TLS_VERIFY="1"\n'
            f'export DOCKER_HOST="tcp://{MINIKUBE_IP}:2376"\n'
            f'export DOCKER_CERT_PATH="{certs}"\n'
            'export MINIKUBE_ACTIVE_DOCKERD="minikube"\n\n'
            "# To point your shell to minikube's docker-daemon, run:\n"
            "# eval $(minikube -p minikube docker-env)"
        )
        return 0
    if argv[:1] == ["ip"]:
        print(MINIKUBE_IP)
    return 0


def _docker_context(argv: list[str]) -> int:
    contexts = _state() / "docker-contexts"
    contexts.mkdir(exist_ok=True)
    action, name = argv[1], argv[2]
    path = contexts / f"{name}.json"
    if action == "inspect":
        return 0 if path.exists() else 1
    if action == "update" and not path.exists():
        print(f"context {name!r} does not exist", file=sys.stderr)
        return 1
    if action == "create" and path.exists():
        print(f"context {name!r} already exists", file=sys.stderr)
        return 1
    spec = argv[argv.index("--docker") + 1]
    endpoint = dict(item.split("=", 1) for item in spec.split(","))
    for key in ("ca", "cert", "key"):
        # Like the real CLI, which copies the files into its context store.
        if key in endpoint and not Path(endpoint[key]).is_file():
            print(f"unable to read {endpoint[key]}", file=sys.stderr)
            return 1
    path.write_text(json.dumps(endpoint))
    return 0


def _docker(argv: list[str]) -> int:
    if argv[:1] == ["context"]:
        return _docker_context(argv)
    if argv[:1] == ["version"]:
        name = os.environ.get("DOCKER_CONTEXT", "")
        known = name and (_state() / "docker-contexts" / f"{name}.json").exists()
        if os.environ.get("STANDIN_DOCKER_DOWN") or "DOCKER_HOST" in os.environ or not known:
            print(
                f"Cannot connect to the Docker daemon at tcp://{MINIKUBE_IP}:2376. "
                "Is the docker daemon running?",
                file=sys.stderr,
            )
            return 1
        print(DOCKER_VERSION)
    return 0


def build_endpoint(env: dict[str, str]) -> dict[str, str]:
    """The Docker endpoint pulumi-docker-build 0.0.22 builds with, by docker/cli's rules.

    The provider's `host` defaults to DOCKER_HOST and becomes the only client option
    (provider/internal/client.go newDockerCLI); a host selects the default context, which gets
    TLS only from flags the provider never sets (cli/command/cli.go resolveContextName,
    resolveDefaultDockerEndpoint). Otherwise DOCKER_CONTEXT names a stored context, TLS included.
    """
    if env.get("DOCKER_HOST"):
        return {"host": env["DOCKER_HOST"]}
    name = env.get("DOCKER_CONTEXT")
    stored = _state() / "docker-contexts" / f"{name}.json"
    if name and stored.exists():
        return dict(json.loads(stored.read_text()))
    return {"host": "unix:///var/run/docker.sock"}


def _pulumi_up() -> int:
    endpoint = build_endpoint(dict(os.environ))
    if endpoint["host"].endswith(":2376") and "cert" not in endpoint:
        # What minikube's daemon answers a plain HTTP request on its TLS port.
        print(
            "error: Client sent an HTTP request to an HTTPS server.",
            file=sys.stderr,
        )
        return 255
    return 0


def _pulumi(argv: list[str]) -> int:
    if argv[:1] == ["up"]:
        return _pulumi_up()
    if argv[:2] == ["stack", "select"] and "--create" in argv:
        stack = argv[2]
        created = _state() / f"stack-{stack}"
        stack_file = Path(f"Pulumi.{stack}.yaml")
        text = stack_file.read_text() if stack_file.exists() else ""
        # The committed salt belongs to the empty passphrase (test_deploy_script pins that).
        if "encryptionsalt:" in text and os.environ.get("PULUMI_CONFIG_PASSPHRASE"):
            print(
                "error: could not create secrets manager for new stack: incorrect passphrase",
                file=sys.stderr,
            )
            return 255
        if not created.exists():
            created.touch()
            if "encryptionsalt:" not in text:
                stack_file.write_text(f"encryptionsalt: {NEW_SALT}\n{text}")
    elif argv[:3] == ["stack", "output", "api_url"]:
        print(API_URL)
    elif argv[:2] == ["config", "get"]:
        # Keys the test sets (STANDIN_CONFIG, a JSON object by --path key), else not found.
        key = argv[argv.index("--path") + 1] if "--path" in argv else argv[2]
        values = json.loads(os.environ.get("STANDIN_CONFIG", "{}"))
        if key in values:
            print(values[key])
            return 0
        print(f"error: configuration key '{key}' not found for stack 'dev'", file=sys.stderr)
        return 1
    return 0


def main(tool: str) -> int:
    """Act as `tool` with the command line of this process."""
    argv = sys.argv[1:]
    with open(os.environ["STANDIN_LOG"], "a") as log:
        log.write(json.dumps({"tool": tool, "argv": argv, "env": dict(os.environ)}) + "\n")
    handlers = {"minikube": _minikube, "docker": _docker, "pulumi": _pulumi}
    return handlers[tool](argv) if tool in handlers else 0
