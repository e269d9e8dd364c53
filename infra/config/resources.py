"""Container requests and limits, as every workload's key group takes them."""

from typing import Self

from pydantic import Field, model_validator

from infra.config.base import StackModel
from infra.kinds import Quantity, parse_quantity
from service.fields import refuse


class Quantities(StackModel):
    """An amount of CPU and of memory."""

    cpu: Quantity = Field(description="CPU, such as 250m or 2")
    memory: Quantity = Field(description="memory, such as 256Mi or 1Gi")


class Resources(StackModel):
    """A container's requests (what the scheduler reserves) and limits (its hard ceiling)."""

    requests: Quantities = Field(description="what the scheduler reserves")
    limits: Quantities = Field(description="the hard ceiling; memory over it kills the pod")

    @classmethod
    def of(cls, cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> Self:
        """Requests, then limits: a component's defaults."""
        limits = Quantities(cpu=cpu_limit, memory=memory_limit)
        return cls(requests=Quantities(cpu=cpu, memory=memory), limits=limits)

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> Self:
        for kind in ("cpu", "memory"):
            request, limit = getattr(self.requests, kind), getattr(self.limits, kind)
            if parse_quantity(limit) < parse_quantity(request):
                raise refuse(f"{limit} is below requests.{kind} ({request})", f"limits.{kind}")
        return self
