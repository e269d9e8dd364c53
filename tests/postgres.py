"""A real PostgreSQL server (Debian's postgresql package) on a free loopback port, for the tests."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import free_port

USER = "sitemaps"
PASSWORD = "sitemaps-test-password"  # a throwaway server on loopback
DATABASE = "catalog"
# PostgreSQL refuses to run as root; the Debian package creates this account.
SERVER_ACCOUNT = "postgres"


def find_bin_dir() -> Path | None:
    """Where initdb and postgres are: PG_BIN_DIR, Debian's versioned directory, or PATH."""
    candidates = [os.environ.get("PG_BIN_DIR", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    found = shutil.which("initdb")
    candidates.append(str(Path(found).parent) if found else "")
    for directory in candidates:
        if directory and (Path(directory) / "initdb").is_file():
            return Path(directory)
    return None


def missing_reason() -> str | None:
    """One line naming what is missing to run the server here, or None."""
    if find_bin_dir() is None:
        return "PostgreSQL's server is not installed (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_ACCOUNT)
        except KeyError:
            return f"running as root needs the {SERVER_ACCOUNT} account that postgresql creates"
    return None


@dataclass
class PostgresServer:
    """initdb into a temporary directory, then `postgres` listening on 127.0.0.1 only."""

    port: int = field(default_factory=free_port)
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pg-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """A SQLAlchemy URL with the psycopg (3) driver."""
        return f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def dsn(self) -> str:
        """The same server as a libpq connection string, for psycopg and psql."""
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def _as_server_user(self, command: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return command
        return ["runuser", "-u", SERVER_ACCOUNT, "--", *command]

    def start(self) -> None:
        bin_dir = find_bin_dir()
        assert bin_dir is not None, missing_reason()
        data = self.directory / "data"
        password_file = self.directory / "password"
        password_file.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            account = pwd.getpwnam(SERVER_ACCOUNT)
            os.chown(self.directory, account.pw_uid, account.pw_gid)
            os.chown(password_file, account.pw_uid, account.pw_gid)
        subprocess.run(
            self._as_server_user(
                [
                    str(bin_dir / "initdb"),
                    "--pgdata",
                    str(data),
                    "--username",
                    USER,
                    "--pwfile",
                    str(password_file),
                    "--auth",
                    "scram-sha-256",
                    "--encoding",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.process = subprocess.Popen(
            self._as_server_user(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.directory),
                    "-c",
                    "fsync=off",
                    "-c",
                    "statement_timeout=60000",
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._create_database()

    def _create_database(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(
                    f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/postgres",
                    connect_timeout=2,
                    autocommit=True,
                ) as connection:
                    connection.execute(f"CREATE DATABASE {DATABASE}")
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # SIGTERM: PostgreSQL's "smart" shutdown
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)
