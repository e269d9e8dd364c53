"""What the publisher needs of the object it switches between generations: an Ingress or an HTTPRoute."""

from __future__ import annotations

from typing import Protocol


class LiveState(Protocol):
    """The live generation a router names, and the resourceVersion it was read at."""

    @property
    def live(self) -> str | None: ...

    @property
    def resource_version(self) -> str: ...


class Router(Protocol):
    """Reads and switches one namespaced object; `switch` raises ConflictError when the object
    is no longer at `resource_version`, and returns only once the new generation is in force."""

    kind: str  # as operators know it, for messages: "Ingress", "HTTPRoute"
    name: str
    namespace: str

    def read(self) -> LiveState: ...

    def switch(self, bucket: str, resource_version: str) -> LiveState: ...
