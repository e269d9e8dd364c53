"""`api`: the image API's Deployment, Service and route, and the service settings it sets."""

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from infra.config.base import Resources, StackModel, mirror
from infra.kinds import Hostname, Replicas
from service.fields import Flag, Integer, refuse
from service.settings import FetchSettings, ServingSettings, StorageSettings

Percent = Annotated[Integer, Field(ge=1, le=100)]
Window = Annotated[Integer, Field(ge=0, le=3600)]
Drain = Annotated[Integer, Field(ge=1, le=120)]


class Autoscaling(StackModel):
    """A HorizontalPodAutoscaler on CPU, which then owns the API's replica count."""

    enabled: Flag = Field(False, description="scale the API with its CPU use")
    min_replicas: Replicas = Field(2, description="fewest API pods")
    max_replicas: Replicas = Field(6, description="most API pods")
    cpu_percent: Percent = Field(80, description="CPU use scaled to, in percent of the request")
    scale_down_window_seconds: Window = Field(300, description="below target this long first")
    scale_down_pods_per_minute: Replicas = Field(1, description="most pods removed a minute")

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise refuse(f"must not be below minReplicas ({self.min_replicas})", "maxReplicas")
        return self


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
    autoscaling: Autoscaling = Field(Autoscaling())
    drain_seconds: Drain = Field(5, description="a stopping pod serves on while its endpoints go")
    spread: Literal["soft", "hard"] = Field("soft", description="one pod a node: preferred or must")

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if self.autoscaling.enabled and "replicas" in self.model_fields_set:
            raise refuse(
                "is not read with api.autoscaling.enabled: the autoscaler sets it", "replicas"
            )
        if self.incoming_bucket == self.processed_bucket:
            raise refuse(
                f"must differ from api.incomingBucket ({self.incoming_bucket})", "processedBucket"
            )
        return self
