"""`storage`: the in-cluster MinIO StatefulSet, or an external S3 endpoint."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from infra.config.base import StackModel, mirror
from infra.kinds import SUBDOMAIN, is_ip, labels_fit
from service.fields import Flag, Text, checked, refuse
from service.settings import Region, StorageSettings


def _split(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() and len(port) <= 5 else 0


def _is_endpoint(endpoint: str) -> bool:
    host, port = _split(endpoint)
    named = is_ip(host) or (re.fullmatch(SUBDOMAIN, host) is not None and labels_fit(host))
    return named and 1 <= port <= 65535


Endpoint = Annotated[Text, checked(_is_endpoint, "must be host:port, such as s3.example.com:9000")]


class StorageConfig(StackModel):
    """Where the objects live; an external endpoint is reached with the stack's secrets."""

    kind: Literal["minio", "external"] = Field("minio", description="MinIO, or an external S3")
    endpoint: Endpoint | None = Field(None, description="with kind external: host:port")
    tls: Flag | None = Field(None, description="with kind external: HTTPS (unset: true)")
    region: Region | None = mirror(StorageSettings, "region")

    @model_validator(mode="after")
    def _kind_decides(self) -> StorageConfig:
        given = [key for key in ("endpoint", "tls", "region") if getattr(self, key) is not None]
        if self.kind == "minio" and given:
            raise refuse("is only read with storage.kind=external", given[0])
        if self.kind == "external" and self.endpoint is None:
            raise refuse("is required with storage.kind=external", "endpoint")
        return self

    @property
    def secure(self) -> bool:
        """Whether the external endpoint is reached over HTTPS: unless tls is false."""
        return self.tls is not False

    @property
    def host(self) -> str:
        """The external endpoint's host."""
        return _split(self.endpoint or "")[0]

    @property
    def port(self) -> int:
        """The external endpoint's port."""
        return _split(self.endpoint or "")[1]
