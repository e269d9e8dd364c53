"""ExternalStorage: an S3 endpoint outside the stack, in place of the MinIO StatefulSet."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_kubernetes.core.v1 import Secret, Service, ServicePortArgs, ServiceSpecArgs
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs

from infra.common import (
    MINIO_PASSWORD_KEY,
    MINIO_USER_KEY,
    StorageAccess,
    labels,
    secret_value,
)
from infra.config.storage import StorageConfig
from infra.kinds import host_port

COMPONENT = "storage"
# The sitemaps route's backend: routes name Services, so the endpoint gets one of its own.
SERVICE_NAME = "external-storage"


@dataclass
class ExternalStorageArgs:
    """Inputs of ExternalStorage."""

    namespace: pulumi.Input[str]
    config: StorageConfig
    access_key: pulumi.Output[str]
    secret_key: pulumi.Output[str]
    # Only the sitemaps route needs a Service in front of the endpoint.
    route: bool


class ExternalStorage(pulumi.ComponentResource):
    """The credentials Secret and, for the sitemaps route, an ExternalName Service."""

    secret_name: pulumi.Output[str]
    service_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: ExternalStorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("kube-image-processing:index:ExternalStorage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = args.config
        component_labels = labels(COMPONENT)

        # The same keys as MinIO's Secret, so the workloads read both the same way.
        secret = Secret(
            f"{name}-credentials",
            metadata=ObjectMetaArgs(namespace=args.namespace, labels=component_labels),
            type="Opaque",
            string_data={
                MINIO_USER_KEY: secret_value(args.access_key),
                MINIO_PASSWORD_KEY: secret_value(args.secret_key),
            },
            opts=child,
        )
        self.secret_name = secret.metadata.name
        self.service_name = pulumi.Output.from_input("")
        if args.route:
            service = Service(
                f"{name}-service",
                metadata=ObjectMetaArgs(
                    name=SERVICE_NAME, namespace=args.namespace, labels=component_labels
                ),
                spec=ServiceSpecArgs(
                    type="ExternalName",
                    external_name=config.host,
                    ports=[
                        ServicePortArgs(
                            name="s3", port=host_port(str(config.endpoint))[1], protocol="TCP"
                        )
                    ],
                ),
                opts=child,
            )
            self.service_name = service.metadata.name
        self._config = config
        self.register_outputs({"secret_name": self.secret_name, "service_name": self.service_name})

    @property
    def access(self) -> StorageAccess:
        """What the workloads and the sitemaps route need to reach the endpoint."""
        config = self._config
        return StorageAccess(
            endpoint=str(config.endpoint),
            secret_name=self.secret_name,
            service_name=self.service_name,
            service_port=host_port(str(config.endpoint))[1],
            secure=config.tls is not False,
            region=config.region,
            route_host=config.host,
        )
