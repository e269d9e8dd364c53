"""Run one container of a rendered pod spec with podman, the way the kubelet would run it.

Everything comes from the objects the Pulumi program rendered: command and args, env (with
secretKeyRef values taken from the rendered Secrets and fieldRef from the pod's namespace),
the user and group, the read-only root, the dropped capabilities, no privilege escalation,
each emptyDir as a tmpfs of its sizeLimit, the projected service-account volume, the memory
and CPU limits, the ports, the probes and the termination grace period. What the test changes
is passed in explicitly as `overrides` and `extra_mounts`, so it is visible in the test.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3

from tests.container.engine import NETWORK, environment, tool
from tests.container.labels import MADE_BY_TESTS
from tests.infra.k8s_objects import kubelet_env
from tests.servers import free_port

_QUANTITY = re.compile(r"^(?P<number>[0-9.]+)(?P<unit>[KMGTE]i?|m)?$")
_UNITS = {
    "": 1,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
}
# Created by podman (as by the kubelet) to mount /etc/hosts, /etc/hostname and /etc/resolv.conf.
ENGINE_MOUNT_POINTS = frozenset(
    {"/etc", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run", "/run/.containerenv"}
)
# Kubernetes' default when a pod spec sets none.
DEFAULT_GRACE_SECONDS = 30
# Every field of the rendered specs is either run below or named here with why it is not, so a
# new field in the Pulumi program (a startupProbe, a preStop hook, ...) fails the test until the
# run follows it.
NOT_RUN = {
    "image": "the image under test takes its place",
    "imagePullPolicy": "nothing is pulled here",
    "seccompProfile": "podman's default seccomp profile stands in for the node's RuntimeDefault",
    "fsGroupChangePolicy": "emptyDirs start empty and world-writable; nothing to chown",
    "automountServiceAccountToken": "the projected service-account volume is run explicitly",
    "serviceAccountName": "RBAC is the Kubernetes API stand-in's part",
    "restartPolicy": "each container runs once; nothing restarts it",
    "requests": "they only place the pod; there is no scheduler here",
    "topologySpreadConstraints": "they only place the pods; there is no scheduler here",
}
RUN = {
    "container": {
        "name",
        "command",
        "args",
        "env",
        "ports",
        "livenessProbe",
        "readinessProbe",
        "volumeMounts",
        "securityContext",
        "resources",
        "lifecycle",
    },
    "pod": {"containers", "volumes", "securityContext", "terminationGracePeriodSeconds"},
    "securityContext": {
        "runAsUser",
        "runAsGroup",
        "runAsNonRoot",
        "fsGroup",
        "readOnlyRootFilesystem",
        "capabilities",
        "allowPrivilegeEscalation",
        "privileged",
    },
    "resources": {"limits"},
}


def quantity(value: str) -> float:
    """A Kubernetes quantity ("512Mi", "500m", "2") as a number of bytes or cores."""
    match = _QUANTITY.match(str(value))
    assert match, f"unsupported quantity {value!r}"
    unit = match["unit"] or ""
    if unit == "m":
        return float(match["number"]) / 1000
    return float(match["number"]) * _UNITS[unit]


@dataclass(frozen=True)
class ServiceAccount:
    """What the kubelet projects for a pod's service account: its token and the cluster's CA."""

    token: str
    ca_pem: bytes


@dataclass
class PodContainer:
    """One container of a rendered pod template, with what the kubelet would resolve for it."""

    pod_spec: dict[str, Any]
    container: dict[str, Any]
    namespace: str
    secrets: Mapping[str, Mapping[str, str]]

    @classmethod
    def from_workload(
        cls, workload: dict[str, Any], secrets: list[dict[str, Any]], name: str | None = None
    ) -> PodContainer:
        """The pod template of a Deployment or CronJob, and its container `name` (or only one)."""
        spec = workload["spec"]
        if workload["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        pod_spec = spec["template"]["spec"]
        containers = [c for c in pod_spec["containers"] if name is None or c["name"] == name]
        assert len(containers) == 1, f"expected one container {name or ''} in {workload['kind']}"
        data = {}
        for secret in secrets:
            values = dict(secret.get("stringData") or {})
            for key, encoded in (secret.get("data") or {}).items():
                values[key] = base64.b64decode(encoded).decode()
            data[secret["metadata"]["name"]] = values
        return cls(pod_spec, containers[0], workload["metadata"]["namespace"], data)

    def not_run(self) -> list[str]:
        """Fields of this spec that neither the run below follows nor NOT_RUN explains."""
        fields = [
            *(("container", key) for key in self.container),
            *(("pod", key) for key in self.pod_spec),
            *(("securityContext", key) for key in self.container.get("securityContext") or {}),
            *(("securityContext", key) for key in self.pod_spec.get("securityContext") or {}),
            *(("resources", key) for key in self.container.get("resources") or {}),
        ]
        return sorted(
            {f"{where}.{key}" for where, key in fields if key not in RUN[where] | set(NOT_RUN)}
        )

    def _security(self, key: str) -> Any:
        own = self.container.get("securityContext") or {}
        return own.get(key, (self.pod_spec.get("securityContext") or {}).get(key))

    @property
    def user(self) -> tuple[int, int]:
        uid, gid = self._security("runAsUser"), self._security("runAsGroup")
        assert uid is not None, "the pod spec names no runAsUser"
        assert gid is not None, "the pod spec names no runAsGroup"
        if self._security("runAsNonRoot"):
            assert uid != 0, "runAsNonRoot with runAsUser 0: the kubelet would refuse to start it"
        return int(uid), int(gid)

    @property
    def grace_seconds(self) -> int:
        return int(self.pod_spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS))

    @property
    def pre_stop_seconds(self) -> int:
        """The preStop hook's sleep; the only hook this runs, as the kubelet does, before SIGTERM."""
        hook = (self.container.get("lifecycle") or {}).get("preStop") or {}
        assert set(hook) <= {"sleep"}, f"pod.py runs only a preStop sleep, not {sorted(hook)}"
        return int(hook.get("sleep", {}).get("seconds", 0))

    def env(self) -> dict[str, str]:
        """The container's env as the kubelet resolves it."""
        return kubelet_env(
            self.container, self.namespace, lambda name, key: self.secrets[name][key]
        )

    def port(self, name_or_number: str | int) -> int:
        """A container port by its name or number."""
        for port in self.container.get("ports") or []:
            if name_or_number in (port.get("name"), port["containerPort"]):
                return int(port["containerPort"])
        raise AssertionError(f"no container port {name_or_number}")

    def empty_dirs(self) -> set[str]:
        """The names of the pod's emptyDir volumes."""
        return {v["name"] for v in self.pod_spec.get("volumes") or [] if "emptyDir" in v}

    def _project(self, volume: dict[str, Any], account: ServiceAccount, into: Path) -> Path:
        """Write a projected volume's files as the kubelet would, from its sources' items."""
        into.mkdir(mode=0o755)
        files: dict[str, bytes] = {}
        for source in volume["projected"]["sources"]:
            if "serviceAccountToken" in source:
                files[source["serviceAccountToken"]["path"]] = account.token.encode()
            elif source.get("configMap", {}).get("name") == "kube-root-ca.crt":
                for item in source["configMap"]["items"]:
                    assert item["key"] == "ca.crt", item
                    files[item["path"]] = account.ca_pem
            elif "downwardAPI" in source:
                for item in source["downwardAPI"]["items"]:
                    assert item["fieldRef"]["fieldPath"] == "metadata.namespace", item
                    files[item["path"]] = self.namespace.encode()
            else:
                raise AssertionError(f"projected volume: unsupported source {source}")
        for name, content in files.items():
            (into / name).write_bytes(content)
            (into / name).chmod(0o644)
        return into

    def _volumes(self, account: ServiceAccount | None, scratch: Path) -> list[str]:
        volumes = {volume["name"]: volume for volume in self.pod_spec.get("volumes") or []}
        args = []
        for mount in self.container.get("volumeMounts") or []:
            volume = volumes[mount["name"]]
            target = mount["mountPath"]
            if "emptyDir" in volume:
                size = int(quantity(volume["emptyDir"]["sizeLimit"]))
                # Empty and world-writable, as the kubelet makes an emptyDir.
                args += ["--tmpfs", f"{target}:rw,size={size},mode=0777,notmpcopyup"]
            elif "projected" in volume:
                assert account is not None, f"{mount['name']} needs a service account"
                files = self._project(volume, account, scratch / mount["name"])
                args += ["--volume", f"{files}:{target}:ro"]
            else:
                raise AssertionError(f"volume {mount['name']}: unsupported kind {volume}")
        return args

    def run_args(
        self,
        image: str,
        name: str,
        overrides: Mapping[str, str],
        ports: Mapping[int, int],
        account: ServiceAccount | None,
        scratch: Path,
        extra_mounts: Mapping[Path, str],
        command: list[str] | None,
    ) -> list[str]:
        """`podman run` arguments for this container."""
        assert not self.not_run(), f"pod.py does not run {', '.join(self.not_run())} yet"
        security = self.container.get("securityContext") or {}
        uid, gid = self.user
        args = [
            "podman",
            "run",
            "--detach",
            "--pull=never",
            f"--name={name}",
            f"--label={MADE_BY_TESTS}",
            f"--network={NETWORK}",
            f"--user={uid}:{gid}",
            f"--stop-timeout={self.grace_seconds}",
        ]
        fs_group = (self.pod_spec.get("securityContext") or {}).get("fsGroup")
        if fs_group is not None:
            args.append(f"--group-add={fs_group}")
        if security.get("readOnlyRootFilesystem"):
            # podman would otherwise mount its own tmpfs on /tmp, /var/tmp and /run.
            args += ["--read-only", "--read-only-tmpfs=false"]
        capabilities = security.get("capabilities") or {}
        args += [f"--cap-drop={cap}" for cap in capabilities.get("drop") or []]
        args += [f"--cap-add={cap}" for cap in capabilities.get("add") or []]
        if security.get("allowPrivilegeEscalation") is False:
            args.append("--security-opt=no-new-privileges")
        assert not security.get("privileged"), "a privileged container is not run here"
        limits = (self.container.get("resources") or {}).get("limits") or {}
        if "memory" in limits:
            memory = int(quantity(limits["memory"]))
            args += [f"--memory={memory}", f"--memory-swap={memory}"]
        if "cpu" in limits:
            args.append(f"--cpus={quantity(limits['cpu'])}")
        for container_port, host_port in ports.items():
            args.append(f"--publish=127.0.0.1:{host_port}:{container_port}")
        args += self._volumes(account, scratch)
        for source, target in extra_mounts.items():
            args.append(f"--volume={source}:{target}")
        env = self.env()
        for key in overrides:
            assert key in env or key in OVERRIDES_ADDED, f"override {key} is not in the pod spec"
        for key, value in {**env, **overrides}.items():
            args.append(f"--env={key}={value}")
        entry = command if command is not None else self.container.get("command")
        if entry:
            args.append(f"--entrypoint={json.dumps(entry)}")
        args.append(image)
        if command is None:
            args += self.container.get("args") or []
        return args


# Settings the test adds that the pod spec does not carry (the kubelet adds the first two).
OVERRIDES_ADDED = frozenset(
    {"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "FETCH_ALLOW_PRIVATE_NETWORKS"}
)


@dataclass
class Running:
    """A container started from a pod spec: its name, its spec and its published ports."""

    spec: PodContainer
    name: str
    scratch: Path
    ports: dict[int, int] = field(default_factory=dict)

    def url(self, port: str | int, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.ports[self.spec.port(port)]}{path}"

    def probe(self, which: str) -> bool:
        """One HTTP probe as the kubelet does it: its path, its port, its timeout, 200-399."""
        probe = self.spec.container[which]["httpGet"]
        timeout = float(self.spec.container[which].get("timeoutSeconds", 1))
        try:
            response = urllib3.request(
                "GET",
                self.url(probe["port"], probe["path"]),
                timeout=timeout,
                retries=False,
                redirect=False,
            )
        except urllib3.exceptions.HTTPError:
            return False
        return 200 <= response.status < 400

    def wait_until(self, which: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.probe(which):
                return
            if not self.running():
                raise AssertionError(f"{self.name} exited:\n{self.logs()}")
            time.sleep(0.2)
        raise AssertionError(f"{which} of {self.name} never passed in {timeout}s:\n{self.logs()}")

    def state(self) -> dict[str, Any]:
        completed = tool("podman", "container", "inspect", self.name)
        return dict(json.loads(completed.stdout)[0]["State"])

    def running(self) -> bool:
        return bool(self.state()["Running"])

    def logs(self) -> str:
        completed = tool("podman", "logs", self.name, check=False)
        return completed.stdout + completed.stderr

    def stderr_lines(self) -> list[str]:
        completed = tool("podman", "logs", self.name, check=False)
        return completed.stderr.strip().splitlines()

    def stop(self) -> tuple[int, float]:
        """As the kubelet stops a container: its preStop sleep, then SIGTERM, then SIGKILL when
        the grace period (which the hook's time counts towards) is over; exit code, seconds."""
        started = time.monotonic()
        time.sleep(self.spec.pre_stop_seconds)  # the container serves on meanwhile
        left = max(0, self.spec.grace_seconds - self.spec.pre_stop_seconds)
        tool("podman", "stop", f"--time={left}", self.name, timeout=left + 60)
        return int(self.state()["ExitCode"]), time.monotonic() - started

    def wait(self, timeout: float) -> int:
        """Wait for the container to exit by itself; its exit code."""
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} still runs after {timeout}s:\n{self.logs()}")
            time.sleep(0.2)
        return int(self.state()["ExitCode"])

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        """Run `command` in the running container, as its user."""
        return tool("podman", "exec", self.name, *command, check=False)

    def written(self) -> list[str]:
        """What changed in the container's own layer, beyond the mount points podman made.

        podman (as the kubelet's runtime) creates the mount points of /etc/hosts and friends and
        of the pod's volumes in that layer; anything else there was written by the process.
        """
        completed = tool("podman", "diff", "--format", "json", self.name)
        document = json.loads(completed.stdout or "{}")
        allowed = set(ENGINE_MOUNT_POINTS)
        for mount in self.spec.container.get("volumeMounts") or []:
            # /var/run is a symbolic link to /run in Debian images.
            path = Path(re.sub(r"^/var/run(?=/|$)", "/run", mount["mountPath"]))
            allowed |= {str(path), *(str(parent) for parent in path.parents)}
        return sorted(
            path for paths in document.values() for path in paths or [] if path not in allowed
        )

    def remove(self) -> None:
        tool("podman", "rm", "--force", "--time=0", self.name, check=False)
        shutil.rmtree(self.scratch, ignore_errors=True)


def start(
    spec: PodContainer,
    image: str,
    overrides: Mapping[str, str],
    account: ServiceAccount | None = None,
    extra_mounts: Mapping[Path, str] | None = None,
    command: list[str] | None = None,
) -> Running:
    """Start `spec` detached; the caller removes it (see `Running.remove`)."""
    name = f"kip-test-{uuid.uuid4().hex[:8]}"
    ports = {spec.port(p["containerPort"]): free_port() for p in spec.container.get("ports") or []}
    scratch = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    scratch.chmod(0o755)
    running = Running(spec, name, scratch, ports)
    try:
        args = spec.run_args(
            image, name, overrides, ports, account, scratch, extra_mounts or {}, command
        )
    except BaseException:
        running.remove()
        raise
    completed = subprocess.run(
        args, capture_output=True, text=True, timeout=120, check=False, env=environment()
    )
    if completed.returncode != 0:
        running.remove()
        raise AssertionError(f"podman run failed:\n{completed.stderr[-4000:]}")
    return running
