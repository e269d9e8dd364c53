"""A pod's memory of the conversions it did, shared by its worker processes at no round trip.

A fixed table in a file under the temporary directory (an emptyDir in the pod), mapped into
every worker: each source name hashes to a set of four slots; a full set gives one of them
to the newcomer, so the table is bounded. A slot is written without a lock; a check value
over it makes a torn or foreign entry read as a miss.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

SLOTS = 32_768  # 2.3 MiB; only the pages in use take memory
WAYS = 4  # slots per set: one slot per name would lose 2% of 1,500 entries to collisions
_NAME_BYTES = 32
_CHECK_BYTES = 8
_ENTRY = 2 * _NAME_BYTES + _CHECK_BYTES
_EMPTY = bytes(_NAME_BYTES)


def table_path(scope: str) -> Path:
    """The file of the table for `scope`: one per storage endpoint and bucket pair, so that
    two APIs on one machine that use different storage never share entries."""
    digest = hashlib.sha256(scope.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"kube-image-processing-conversions-{digest}"


def _check(key: bytes, value: bytes) -> bytes:
    return hashlib.blake2b(key + value, digest_size=_CHECK_BYTES).digest()


class ConversionMemo:
    """Source name -> result name (both SHA-256 hex digests), for one storage and its buckets."""

    def __init__(self, scope: str, slots: int = SLOTS) -> None:
        self._slots = slots
        size = slots * _ENTRY
        self.path = table_path(scope)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size != size:
                    os.ftruncate(fd, size)
                self._table = mmap.mmap(fd, size)
            finally:
                os.close(fd)
        except OSError as error:
            # Still a memory, for this process alone.
            log.warning("conversion memo not shared between workers: %s", error)
            self._table = mmap.mmap(-1, size)

    def get(self, source: str) -> str | None:
        """The result name remembered for `source`, or None."""
        key = bytes.fromhex(source)
        for start in self._set(key):
            entry = self._table[start : start + _ENTRY]
            if entry[:_NAME_BYTES] == key:
                value = entry[_NAME_BYTES : 2 * _NAME_BYTES]
                return value.hex() if entry[2 * _NAME_BYTES :] == _check(key, value) else None
        return None

    def put(self, source: str, result: str) -> None:
        key, value = bytes.fromhex(source), bytes.fromhex(result)
        slots = self._set(key)
        chosen = slots[key[8] % len(slots)]  # a full set: a slot the name picks itself
        for start in slots:
            held = self._table[start : start + _NAME_BYTES]
            if held in (key, _EMPTY):
                chosen = start
                break
        self._table[chosen : chosen + _ENTRY] = key + value + _check(key, value)

    def _set(self, key: bytes) -> list[int]:
        ways = min(WAYS, self._slots)
        first = int.from_bytes(key[:8], "big") % (self._slots // ways) * ways
        return [(first + way) * _ENTRY for way in range(ways)]
