"""`minio`: the MinIO StatefulSet."""

from typing import Literal, Self

from pydantic import Field, model_validator

from infra.config.base import StackModel, mirror
from infra.config.resources import Resources
from infra.kinds import Cidr, ObjectName, PinnedImage, Quantity, Replicas, parse_quantity
from service.fields import Flag, refuse
from service.settings import MinioServerSettings

# MinIO's last community image, frozen (no security fixes), pinned to its multi-arch index
# digest as public pins of this tag record it; SILO_IMAGE is the maintained drop-in.
DEFAULT_MINIO_IMAGE = (
    "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
    "@sha256:14cea493d9a34af32f524e538b8346cf79f3321eff8e708c1e2960462bd8936e"
)
SILO_IMAGE = (
    "docker.io/pgsty/silo:RELEASE.2026-09-16T00-00-00Z"
    "@sha256:635197cb9f36d01bee221d34d1c7d7960f6a95c48b0b6c01d99cd13bdae51a46"
)
MAX_ERASURE_SET = 16


class MinioConfig(StackModel):
    """The MinIO StatefulSet: its size, image, volumes and placement."""

    replicas: Replicas = Field(1, description="servers; 2 or more run one erasure-coded server")
    image: PinnedImage = Field(DEFAULT_MINIO_IMAGE, description="the MinIO image")
    storage_size: Quantity = Field("10Gi", description="each server's volume")
    storage_class: ObjectName | None = Field(None, description="unset: the cluster's default")
    anti_affinity: Literal["soft", "hard"] = Field("soft", description="one server per node")
    ci_cd_mode: bool = mirror(MinioServerSettings, "ci_cd")
    resources: Resources = Field(Resources.of("250m", "512Mi", "1", "1Gi"))
    allow_data_loss: Flag = Field(False, description="a new server count starts MinIO empty")
    allowed_cidrs: list[Cidr] = Field([], description="more sources of MinIO's API port")

    @property
    def distributed(self) -> bool:
        """Two or more replicas run one distributed, erasure-coded server."""
        return self.replicas >= 2

    @model_validator(mode="after")
    def _layout(self) -> Self:
        sizes = range(2, MAX_ERASURE_SET + 1)
        if self.replicas > MAX_ERASURE_SET and all(self.replicas % n for n in sizes):
            raise refuse(
                f"{self.replicas} cannot be split into erasure sets of 2 to {MAX_ERASURE_SET} "
                f"drives; choose 1, 2 to {MAX_ERASURE_SET}, or a multiple of one of those",
                "replicas",
            )
        if self.ci_cd_mode and self.anti_affinity == "hard":
            raise refuse(
                "true is for single-machine clusters whose volumes sit on the root disk; remove "
                "it where minio.antiAffinity=hard",
                "ciCdMode",
            )
        if parse_quantity(self.storage_size) <= 0:
            raise refuse(f"must be larger than 0, got {self.storage_size}", "storageSize")
        return self
