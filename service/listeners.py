"""Which process listens on a TCP port, as Linux's /proc tells it, to name it in an error."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

PROC = Path("/proc")
LISTEN = "0A"  # the TCP state code of a listening socket in /proc/net/tcp
WILDCARDS = (ipaddress.ip_address("0.0.0.0"), ipaddress.ip_address("::"))  # noqa: S104
COMMAND_CHARS = 100


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address of /proc/net/tcp{,6}: 32-bit words, each in the host's (little-endian) order."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def listening_sockets(host: str, port: int) -> set[str]:
    """The inodes of the listening sockets that hold `port` where `host` would bind it."""
    wanted = ipaddress.ip_address(host)
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            hex_address, _, hex_port = fields[1].partition(":")
            if fields[3] != LISTEN or int(hex_port, 16) != port:
                continue
            address = _address(hex_address)
            mapped = getattr(address, "ipv4_mapped", None)
            if wanted in WILDCARDS or address in WILDCARDS or wanted in (address, mapped):
                inodes.add(fields[9])
    return inodes


def _command(pid: int) -> str:
    try:
        argv = (PROC / str(pid) / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return "?"
    words = [os.path.basename(argv[0].decode(errors="replace"))]
    words += [arg.decode(errors="replace") for arg in argv[1:]]
    command = " ".join(" ".join(words).split())  # one line, whatever the arguments hold
    return command if len(command) <= COMMAND_CHARS else command[: COMMAND_CHARS - 1] + "…"


def _parent(pid: int) -> int | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def holders(inodes: set[str]) -> list[int]:
    """The processes with one of these sockets open, of those whose file descriptors we may read."""
    links = {f"socket:[{inode}]" for inode in inodes}
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            descriptors = list((entry / "fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor) in links:
                    found.append(int(entry.name))
                    break
            except OSError:
                continue
    return sorted(found)


def who_listens(host: str, port: int) -> str | None:
    """`pid N (command)` of the process listening on `host:port`, or None where /proc cannot
    tell (no such listener, or one of another user). Of processes sharing the socket, such as
    a server's master and its workers, the one that started the others is named."""
    try:
        pids = holders(listening_sockets(host, port))
    except (OSError, ValueError):
        return None
    if not pids:
        return None
    roots = [pid for pid in pids if _parent(pid) not in pids] or pids
    others = len(pids) - 1
    more = f" and {others} more process{'es' if others > 1 else ''}" if others else ""
    return f"pid {roots[0]} ({_command(roots[0])}){more}"
