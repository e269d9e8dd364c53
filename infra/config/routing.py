"""`routing`: nginx Ingresses, or Gateway API HTTPRoutes attached to an existing Gateway."""

from typing import Literal, Self

from pydantic import Field, model_validator

from infra.config.base import StackModel
from infra.kinds import DnsLabel, Labels, ObjectName
from service.fields import Flag, refuse


class GatewayConfig(StackModel):
    """The existing Gateway the HTTPRoutes attach to; the cluster's operator owns it."""

    name: ObjectName | None = Field(None, description="the Gateway (required)")
    namespace: DnsLabel | None = Field(None, description="its namespace; unset: the stack's")
    section_name: ObjectName | None = Field(None, description="one of its listeners")
    https: Flag = Field(False, description="the listener terminates TLS: URLs are https")
    proxy_pod_labels: Labels = Field({}, description="its proxy pods, for MinIO's policy")
    request_timeout: Flag = Field(True, description="timeouts.request on the API's route")


class RoutingConfig(StackModel):
    """How requests reach the API and the sitemaps."""

    kind: Literal["ingress", "gateway"] = Field("ingress", description="Ingresses or HTTPRoutes")
    gateway: GatewayConfig | None = Field(None, description="with kind gateway: the Gateway")

    @model_validator(mode="after")
    def _gateway_with_kind(self) -> Self:
        if self.kind == "ingress" and self.gateway is not None:
            raise refuse("is only read with routing.kind=gateway", "gateway")
        if self.kind == "gateway" and (self.gateway is None or self.gateway.name is None):
            raise refuse("is required with routing.kind=gateway (an existing one)", "gateway.name")
        return self
