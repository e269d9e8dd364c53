"""make deploy, run for real against stand-ins of minikube, docker, pulumi and curl.

No minikube, Docker engine or Pulumi CLI can run here, so `deploy_standins` stands in for them:
each acts like the real command for what the script uses and records its argv and environment.
The script, the Makefile, bash, make and git are the real ones, in a copy of the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from deploy_standins import API_URL, MINIKUBE_IP, install

ROOT = Path(__file__).resolve().parent.parent
CONTEXT = "kube-image-processing-minikube"
COPIED = ("scripts", "Makefile", "Pulumi.yaml", "Pulumi.dev.yaml", ".gitignore")
INSTALL_LINKS = {
    "pulumi": "https://www.pulumi.com/docs/iac/download-install/",
    "minikube": "https://minikube.sigs.k8s.io/docs/start/",
    "docker": "https://docs.docker.com/get-docker/",
    "curl": "https://curl.se/download.html",
    "python3": "https://www.python.org/downloads/",
}
# What bash, make and the scripts need from the system, without any of the prerequisites.
SYSTEM_TOOLS = ("bash", "sh", "make", "dirname", "env", "grep", "seq", "sleep", "cat", "mkdir")


@dataclass
class Run:
    """One run of the deploy script in a copied repository."""

    repo: Path
    done: subprocess.CompletedProcess[str]
    calls: list[dict[str, Any]]

    def of(self, tool: str, *prefix: str) -> list[dict[str, Any]]:
        return [
            c for c in self.calls if c["tool"] == tool and c["argv"][: len(prefix)] == list(prefix)
        ]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def _run(
    command: list[str], cwd: Path | None, env: dict[str, str], *, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """`command` with its output captured as text, within 30 s."""
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=30, check=check
    )


def _repository(tmp_path: Path) -> Path:
    """A committed copy of what make deploy reads, with the pinned uv in place."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name)
        else:
            shutil.copy2(source, repo / name)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "copy")
    return repo


def _tool_dir(tmp_path: Path, without: str | None = None) -> Path:
    """Symlinks to the system tools and the stand-ins, all but `without`."""
    bin_dir = tmp_path / "bin"
    install(bin_dir, tuple(t for t in ("minikube", "docker", "pulumi", "curl") if t != without))
    for tool in (*SYSTEM_TOOLS, "python3", "git"):
        found = shutil.which(tool)
        if tool != without and found and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(found)
    return bin_dir


def _environment(tmp_path: Path, bin_dir: Path, **extra: str) -> dict[str, str]:
    certs = tmp_path / "minikube-certs"
    certs.mkdir(exist_ok=True)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (certs / name).write_text(f"stand-in {name}\n")
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": str(bin_dir),
        "HOME": str(home),
        "STANDIN_LOG": str(tmp_path / "calls.jsonl"),
        "STANDIN_STATE": str(state),
        "STANDIN_CERT_PATH": str(certs),
        **extra,
    }


def _deploy(tmp_path: Path, command: list[str], without: str | None = None, **extra: str) -> Run:
    repo = _repository(tmp_path)
    if command[0] != "make":
        uv = repo / ".tools" / "bin" / "uv"
        uv.parent.mkdir(parents=True)
        uv.write_text("#!/bin/sh\nexit 0\n")
        uv.chmod(0o755)
    bin_dir = _tool_dir(tmp_path, without)
    env = _environment(tmp_path, bin_dir, **extra)
    done = subprocess.run(
        command, cwd=repo, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    log = Path(env["STANDIN_LOG"])
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return Run(repo, done, calls)


def _script(tmp_path: Path, **extra: str) -> Run:
    return _deploy(tmp_path, ["bash", "scripts/deploy.sh"], **extra)


def test_pulumi_up_gets_a_docker_context_with_minikubes_tls_material(tmp_path: Path) -> None:
    run = _script(tmp_path)
    assert run.done.returncode == 0, run.done.stderr
    (up,) = run.of("pulumi", "up")
    assert up["argv"] == ["up", "--yes", "--stack", "dev"]
    env = up["env"]
    # pulumi-docker-build reads DOCKER_HOST as a bare host and ignores the TLS variables, so
    # none may reach it; DOCKER_CONTEXT selects the context that carries the certificates.
    for dangling in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        assert dangling not in env
    assert env["DOCKER_CONTEXT"] == CONTEXT
    assert env["PULUMI_CONFIG_PASSPHRASE"] == ""
    assert env["PATH"].split(":")[0] == str(run.repo / ".tools" / "bin")
    context = json.loads((tmp_path / "state" / "docker-contexts" / f"{CONTEXT}.json").read_text())
    certs = tmp_path / "minikube-certs"
    assert context == {
        "host": f"tcp://{MINIKUBE_IP}:2376",
        "ca": f"{certs}/ca.pem",
        "cert": f"{certs}/cert.pem",
        "key": f"{certs}/key.pem",
    }
    (version,) = run.of("docker", "version")
    assert version["env"]["DOCKER_CONTEXT"] == CONTEXT
    assert f"The image API is ready: {API_URL}" in run.done.stdout
    (curl,) = run.of("curl")
    assert curl["argv"][-1] == f"http://{MINIKUBE_IP}/readyz"


def test_docker_env_alone_would_build_over_plain_http(tmp_path: Path) -> None:
    """The stand-in pulumi resolves the build endpoint by the provider's rules: the old manual
    path (`eval $(minikube docker-env)`) fails there, and the context's path does not."""
    env = _environment(tmp_path, _tool_dir(tmp_path))
    old = _run(
        ["bash", "-c", 'eval "$(minikube docker-env --shell bash)" && pulumi up --yes'],
        cwd=ROOT,
        env=env,
    )
    assert old.returncode != 0
    assert "Client sent an HTTP request to an HTTPS server." in old.stderr
    new = _run(
        ["bash", "-c", 'eval "$(scripts/minikube-docker-context.sh)" && pulumi up --yes'],
        cwd=ROOT,
        env=env,
    )
    assert new.returncode == 0, new.stderr


def test_make_deploy_checks_then_syncs_then_deploys(tmp_path: Path) -> None:
    """The real Makefile, with the pinned uv already in .tools (a stub that records its call)."""
    repo = _repository(tmp_path)
    uv = repo / ".tools" / "bin" / "uv"
    uv.parent.mkdir(parents=True)
    uv.write_text(f'#!/bin/sh\necho "uv $*" >> {tmp_path / "uv.log"}\n')
    uv.chmod(0o755)
    env = _environment(tmp_path, _tool_dir(tmp_path))
    done = subprocess.run(
        ["make", "deploy"], cwd=repo, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "uv.log").read_text() == "uv sync --frozen\n"
    assert f"The image API is ready: {API_URL}" in done.stdout
    assert _git(repo, "status", "--porcelain") == ""


def test_steps_run_in_the_documented_order(tmp_path: Path) -> None:
    run = _script(tmp_path)
    assert run.done.returncode == 0, run.done.stderr
    steps = [
        " ".join([c["tool"], *c["argv"][:2]])
        for c in run.calls
        if c["tool"] in ("pulumi", "minikube") or c["argv"][:1] == ["version"]
    ]
    assert steps == [
        "minikube status --format",
        "minikube addons enable",
        "pulumi login --local",
        "pulumi stack select",
        "minikube docker-env --shell",
        "docker version --format",
        "pulumi install",
        "pulumi up --yes",
        "pulumi stack output",
        "pulumi config get",
        "minikube ip",
    ]


def test_a_stopped_minikube_is_started_with_the_ingress_addon(tmp_path: Path) -> None:
    run = _script(tmp_path, STANDIN_MINIKUBE_HOST="Stopped")
    assert run.done.returncode == 0, run.done.stderr
    (start,) = run.of("minikube", "start")
    assert start["argv"] == ["start", "--addons=ingress"]


def test_a_second_run_updates_the_context(tmp_path: Path) -> None:
    first = _script(tmp_path)
    assert first.done.returncode == 0, first.done.stderr
    shutil.rmtree(tmp_path / "repo")
    (tmp_path / "calls.jsonl").unlink()
    second = _script(tmp_path)
    assert second.done.returncode == 0, second.done.stderr
    assert second.of("docker", "context", "update")
    assert not second.of("docker", "context", "create")


def test_the_working_tree_stays_clean(tmp_path: Path) -> None:
    """The stand-in pulumi writes a salt into a stack file without one, as `stack init` does."""
    run = _script(tmp_path)
    assert run.done.returncode == 0, run.done.stderr
    assert run.of("pulumi", "stack", "select")
    assert _git(run.repo, "status", "--porcelain") == ""


def test_an_own_passphrase_is_named_as_the_cause(tmp_path: Path) -> None:
    run = _script(tmp_path, PULUMI_CONFIG_PASSPHRASE="my-own-passphrase")
    assert run.done.returncode == 1
    assert "incorrect passphrase" in run.done.stderr
    assert run.done.stderr.splitlines()[-1].startswith(
        "error: could not select or create the stack dev (see above); Pulumi.dev.yaml's salt"
    )
    assert not run.of("pulumi", "up")


def test_the_standin_would_dirty_a_stack_file_without_a_salt(tmp_path: Path) -> None:
    """The check above has teeth: without the committed salt the tree does get dirty."""
    repo = _repository(tmp_path)
    stack_file = repo / "Pulumi.dev.yaml"
    lines = stack_file.read_text().splitlines(keepends=True)
    stack_file.write_text("".join(line for line in lines if "encryptionsalt" not in line))
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qam", "drop")
    bin_dir = _tool_dir(tmp_path)
    env = _environment(tmp_path, bin_dir)
    subprocess.run(
        ["pulumi", "stack", "select", "dev", "--create"],
        cwd=repo,
        env=env,
        check=True,
        timeout=30,
    )
    assert _git(repo, "status", "--porcelain").strip() == "M Pulumi.dev.yaml"


def test_the_committed_salt_belongs_to_the_empty_passphrase() -> None:
    """Decrypts the salt's check value as Pulumi's passphrase provider does (pulumi/pulumi
    pkg/secrets/passphrase/manager.go, sdk/go/common/resource/config/crypt.go)."""
    import base64
    import hashlib

    import yaml
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    state = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["encryptionsalt"]
    version, salt, crypter_version, nonce, sealed = state.split(":")
    assert (version, crypter_version) == ("v1", "v1")
    key = hashlib.pbkdf2_hmac("sha256", b"", base64.b64decode(salt), 1_000_000, 32)
    message = AESGCM(key).decrypt(base64.b64decode(nonce), base64.b64decode(sealed), None)
    assert message == b"pulumi"


@pytest.mark.parametrize("tool", sorted(INSTALL_LINKS))
def test_make_deploy_names_a_missing_tool_before_installing_anything(
    tmp_path: Path, tool: str
) -> None:
    run = _deploy(tmp_path, ["make", "deploy"], without=tool)
    assert run.done.returncode != 0
    assert f"error: {tool} is missing; install it from {INSTALL_LINKS[tool]}" in run.done.stderr
    assert not (run.repo / ".tools").exists(), "nothing may be installed before the checks pass"
    assert not run.calls


def test_every_missing_tool_is_named_at_once(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in SYSTEM_TOOLS:
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    done = _run(
        [str(bin_dir / "bash"), str(ROOT / "scripts" / "deploy.sh"), "--check"],
        cwd=None,
        env={"PATH": str(bin_dir)},
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: {tool} is missing; install it from {link}" for tool, link in INSTALL_LINKS.items()
    ]


def test_an_unreachable_docker_daemon_is_named_and_nothing_is_deployed(tmp_path: Path) -> None:
    run = _script(tmp_path, STANDIN_DOCKER_DOWN="1")
    assert run.done.returncode == 1
    assert run.done.stderr.splitlines()[-1] == (
        f"error: Docker cannot reach minikube's daemon through the context {CONTEXT}: "
        f"Cannot connect to the Docker daemon at tcp://{MINIKUBE_IP}:2376. "
        "Is the docker daemon running?"
    )
    assert not run.of("pulumi", "up")
    assert not run.of("pulumi", "install")


def test_a_minikube_without_the_docker_runtime_is_named(tmp_path: Path) -> None:
    run = _script(tmp_path, STANDIN_MINIKUBE_RUNTIME="containerd")
    assert run.done.returncode == 1
    assert "minikube must run the docker runtime" in run.done.stderr
    assert "MK_USAGE" in run.done.stderr
    assert not run.of("pulumi", "up")


def test_run_directly_without_the_pinned_uv_says_to_use_make(tmp_path: Path) -> None:
    repo = _repository(tmp_path)
    env = _environment(tmp_path, _tool_dir(tmp_path))
    done = _run(["bash", "scripts/deploy.sh"], cwd=repo, env=env)
    assert done.returncode == 1
    assert "run 'make deploy', which installs the pinned uv first" in done.stderr
    assert not Path(env["STANDIN_LOG"]).exists()


def test_the_manual_path_prints_only_shell_for_the_context(tmp_path: Path) -> None:
    """docs/deploying.md: eval "$(scripts/minikube-docker-context.sh)" then pulumi up."""
    env = _environment(tmp_path, _tool_dir(tmp_path))
    env["DOCKER_HOST"] = "tcp://stale:2376"
    done = _run(
        ["bash", "-c", 'eval "$(scripts/minikube-docker-context.sh)" && env'],
        cwd=ROOT,
        env=env,
        check=True,
    )
    variables = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert variables["DOCKER_CONTEXT"] == CONTEXT
    assert "DOCKER_HOST" not in variables
    assert os.environ.get("DOCKER_CONTEXT") != CONTEXT
