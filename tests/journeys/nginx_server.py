"""A real nginx (Debian's package) on loopback ports, run from a config the test writes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import free_port, wait_for_port

NGINX = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")


def missing_reason() -> str | None:
    """One line naming what is missing to run nginx here, or None."""
    if not Path(NGINX).is_file():
        return f"nginx is not installed at {NGINX} (apt-get install nginx)"
    return None


def _runtime_dir() -> Path:
    # World-traversable, so worker processes that drop root can still reach it.
    directory = Path(tempfile.mkdtemp(prefix="nginx-journey-"))
    directory.chmod(0o755)
    return directory


@dataclass
class NginxServer:
    """nginx in the foreground; `restart` applies a new config before it returns."""

    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    directory: Path = field(default_factory=_runtime_dir)
    process: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.directory / "nginx.conf"

    def _command(self, *extra: str) -> list[str]:
        return [
            NGINX,
            "-p",
            str(self.directory),
            "-e",
            str(self.directory / "error.log"),
            "-c",
            str(self.conf),
            *extra,
        ]

    def start(self, config: str) -> None:
        self.conf.write_text(config)
        checked = subprocess.run(
            self._command("-t"), capture_output=True, text=True, timeout=30, check=False
        )
        if checked.returncode != 0:
            raise AssertionError(f"nginx refused the config:\n{checked.stderr}\n{config}")
        self.process = subprocess.Popen(
            self._command("-g", "daemon off;"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.http_port, timeout=20)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGQUIT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self, config: str) -> None:
        """What ingress-nginx does with a reload, made synchronous: `nginx -s reload` returns
        before the new workers take over, so a crawl right after it could meet the old ones."""
        self.stop()
        self.start(config)

    def errors(self) -> str:
        path = self.directory / "error.log"
        return path.read_text() if path.exists() else ""

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
