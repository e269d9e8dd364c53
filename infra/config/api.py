"""`api`: the image API's Deployment, Service and route, and the service settings it sets."""

from typing import Annotated, Self

from pydantic import Field, model_validator

from infra.config.base import StackModel, mirror
from infra.config.resources import Resources
from infra.kinds import Hostname, Replicas
from service.fields import Integer, refuse
from service.settings import FetchSettings, ServingSettings, StorageSettings


class ApiConfig(StackModel):
    """The image API: its replicas, resources, public host, and the limits its pods enforce."""

    replicas: Replicas = Field(2, description="API pods")
    resources: Resources = Field(Resources.of("100m", "256Mi", "1", "512Mi"))
    node_port: Annotated[Integer, Field(ge=30000, le=32767)] | None = Field(
        None, description="the Service's node port; unset: Kubernetes chooses"
    )
    host: Hostname | None = Field(None, description="public host; unset: any (default server)")
    fetch_timeout_seconds: float = mirror(FetchSettings, "timeout_seconds")
    max_download_bytes: int = mirror(FetchSettings, "max_download_bytes")
    max_image_pixels: int = mirror(FetchSettings, "max_image_pixels")
    web_concurrency: int = mirror(ServingSettings, "web_concurrency")
    incoming_bucket: str = mirror(StorageSettings, "incoming_bucket")
    processed_bucket: str = mirror(StorageSettings, "processed_bucket")

    @model_validator(mode="after")
    def _buckets_differ(self) -> Self:
        if self.incoming_bucket == self.processed_bucket:
            raise refuse(
                f"must differ from api.incomingBucket ({self.incoming_bucket})", "processedBucket"
            )
        return self
