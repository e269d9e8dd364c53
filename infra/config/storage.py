"""`storage`: the in-cluster MinIO StatefulSet, or an external S3 endpoint."""

from typing import Literal, Self

from pydantic import Field, model_validator

from infra.config.base import StackModel, mirror
from infra.kinds import Endpoint, host_port
from service.fields import Flag, refuse
from service.settings import Region, StorageSettings


class StorageConfig(StackModel):
    """Where the objects live; an external endpoint is reached with the stack's secrets."""

    kind: Literal["minio", "external"] = Field("minio", description="MinIO, or an external S3")
    endpoint: Endpoint | None = Field(None, description="with kind external: host:port")
    tls: Flag | None = Field(None, description="with kind external: HTTPS (unset: true)")
    region: Region | None = mirror(StorageSettings, "region")

    @model_validator(mode="after")
    def _kind_decides(self) -> Self:
        given = [key for key in ("endpoint", "tls", "region") if getattr(self, key) is not None]
        if self.kind == "minio" and given:
            raise refuse("is only read with storage.kind=external", given[0])
        if self.kind == "external" and self.endpoint is None:
            raise refuse("is required with storage.kind=external", "endpoint")
        return self

    @property
    def host(self) -> str:
        """The external endpoint's host."""
        return host_port(self.endpoint or "")[0]
