"""service.listeners: which process listens on a port, as /proc tells it, for one-line errors."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from service import listeners
from service.listeners import who_listens

TCP_HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"


def fake_proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tcp_row: str) -> Path:
    """A /proc under `tmp_path` whose net/tcp lists `tcp_row`, for service.listeners to read."""
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "tcp").write_text(f"{TCP_HEADER}\n{tcp_row}\n")
    monkeypatch.setattr(listeners, "PROC", tmp_path)
    return tmp_path


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_this_process_is_named_where_it_listens(listening: int) -> None:
    for host in ("127.0.0.1", "0.0.0.0"):  # a wildcard bind would overlap it
        named = who_listens(host, listening)
        assert named is not None
        assert named.startswith(f"pid {os.getpid()} (")
        assert "\n" not in named
        assert len(named) <= len(f"pid {os.getpid()} ()") + listeners.COMMAND_CHARS
    assert who_listens("127.0.0.2", listening) is None  # another address, no overlap


def test_an_ipv6_wildcard_listener_holds_the_ipv4_loopback_port() -> None:
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::", 0))
        sock.listen()
        port = sock.getsockname()[1]
        named = who_listens("127.0.0.1", port)
    assert named is not None
    assert named.startswith(f"pid {os.getpid()} (")


def test_a_bound_socket_that_does_not_listen_is_not_named() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        assert who_listens("127.0.0.1", sock.getsockname()[1]) is None


def test_a_listener_whose_process_cannot_be_read_is_not_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for another user's process: /proc/net/tcp shows the socket, no /proc/<pid>/fd does."""
    proc = fake_proc(
        tmp_path,
        monkeypatch,
        "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 424242",
    )
    (proc / "4242").mkdir()  # its fd directory is missing, as when it is not ours to read
    assert listeners.listening_sockets("127.0.0.1", 8080) == {"424242"}
    assert who_listens("127.0.0.1", 8080) is None


def test_a_listener_and_its_children_are_named_by_the_one_that_started_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_proc(
        tmp_path,
        monkeypatch,
        "   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0  0 77",
    )
    for pid, parent, argv in ((10, 1, b"/usr/bin/python3\0-m\0server\0"), (11, 10, b"worker\0")):
        (tmp_path / str(pid) / "fd").mkdir(parents=True)
        (tmp_path / str(pid) / "fd" / "3").symlink_to("socket:[77]")
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (python3) S {parent} {pid} {pid}\n")
        (tmp_path / str(pid) / "cmdline").write_bytes(argv)
    assert who_listens("127.0.0.1", 8080) == "pid 10 (python3 -m server) and 1 more process"
