"""ImageApi: the Flask API as a Deployment, a NodePort Service and an nginx Ingress or HTTPRoute."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_kubernetes.apps.v1 import (
    Deployment,
    DeploymentSpecArgs,
    DeploymentStrategyArgs,
    RollingUpdateDeploymentArgs,
)
from pulumi_kubernetes.core.v1 import (
    ContainerArgs,
    ContainerPortArgs,
    EmptyDirVolumeSourceArgs,
    EnvVarArgs,
    EnvVarSourceArgs,
    HTTPGetActionArgs,
    LocalObjectReferenceArgs,
    PodSpecArgs,
    PodTemplateSpecArgs,
    ProbeArgs,
    ResourceFieldSelectorArgs,
    Service,
    ServicePortArgs,
    ServiceSpecArgs,
    VolumeArgs,
    VolumeMountArgs,
)
from pulumi_kubernetes.meta.v1 import LabelSelectorArgs, ObjectMetaArgs
from pulumi_kubernetes.networking.v1 import (
    HTTPIngressPathArgs,
    HTTPIngressRuleValueArgs,
    Ingress,
    IngressBackendArgs,
    IngressRuleArgs,
    IngressServiceBackendArgs,
    IngressSpecArgs,
    NetworkPolicyIngressRuleArgs,
    NetworkPolicyPortArgs,
    ServiceBackendPortArgs,
)

from infra import scaling
from infra.capacity import everyday_image_warnings, largest_images_output
from infra.common import (
    APP_UID,
    StorageAccess,
    container_security_context,
    ingress_policy,
    labels,
    plain_env,
    pod_security_context,
    resource_requirements,
    selector_labels,
    skip_await_annotations,
    storage_env,
    tmp_mount,
    tmp_volume,
)
from infra.config.api import ApiConfig
from infra.config.cluster import IngressConfig
from infra.config.routing import GatewayConfig
from infra.gateway import RouteRule, RouteSpec, ServiceBackend, http_route
from infra.tls import ingress_tls, tls_annotations
from service.settings import (
    FetchSettings,
    RobotsSettings,
    ServingSettings,
    env_name,
    route_timeout_seconds,
)

COMPONENT = "image-api"
DEPLOYMENT_NAME = "image-api"
SERVICE_NAME = "image-api"
INGRESS_NAME = "image-api"
HTTPROUTE_NAME = "image-api"
HTTP_PORT = 8080
SERVICE_PORT = 80
METRICS_DIR = "/tmp/metrics"  # noqa: S108 - inside the pod's own emptyDir
CONTAINER_NAME = "api"


@dataclass
class ImageApiArgs:
    """Inputs of ImageApi."""

    namespace: pulumi.Input[str]
    config: ApiConfig
    ingress: IngressConfig
    image: pulumi.Input[str]
    image_pull_policy: str
    storage: StorageAccess
    pull_secret_names: list[pulumi.Output[str]] = field(default_factory=list)
    # Named in /robots.txt: a sitemap on another host may list this host's URLs only then.
    sitemap_index_url: str | None = None
    # Set: an HTTPRoute attached to this Gateway instead of the nginx Ingress.
    gateway: GatewayConfig | None = None
    # The public scheme, where a Gateway's listener rather than the Ingress terminates TLS.
    scheme: str | None = None


def api_route_spec(
    gateway: GatewayConfig, config: ApiConfig, service_name: pulumi.Input[str]
) -> RouteSpec:
    """The API's HTTPRoute: every path of api.host to the Service, with the Ingress's timeout."""
    return RouteSpec(
        gateway=gateway,
        hostnames=(config.host,) if config.host else (),
        rules=(
            RouteRule(
                path_prefix="/",
                backend=ServiceBackend(service_name, SERVICE_PORT),
                # As proxy-read-timeout on the Ingress: longer than the API's whole download.
                request_timeout_seconds=(
                    route_timeout_seconds(config.fetch_timeout_seconds)
                    if gateway.request_timeout
                    else None
                ),
            ),
        ),
    )


def api_env(
    config: ApiConfig, storage: StorageAccess, sitemap_index_url: str | None = None
) -> list[EnvVarArgs]:
    """The API container's environment, built from the service's settings models."""
    env = storage_env(
        storage,
        incoming_bucket=config.incoming_bucket,
        processed_bucket=config.processed_bucket,
    )
    fetch = FetchSettings(
        max_download_bytes=config.max_download_bytes,
        max_image_pixels=config.max_image_pixels,
        timeout_seconds=config.fetch_timeout_seconds,
    )
    env += plain_env(fetch, "max_download_bytes", "max_image_pixels", "timeout_seconds")
    serving = ServingSettings(
        web_concurrency=config.web_concurrency, prometheus_multiproc_dir=METRICS_DIR
    )
    env += plain_env(serving, "web_concurrency", "prometheus_multiproc_dir")
    # The container's own memory limit, in bytes, so that it is written down only once:
    # the API sizes its conversion budget from it.
    env.append(
        EnvVarArgs(
            name=env_name(ServingSettings, "memory_limit_bytes"),
            value_from=EnvVarSourceArgs(
                resource_field_ref=ResourceFieldSelectorArgs(
                    container_name=CONTAINER_NAME, resource="limits.memory", divisor="1"
                )
            ),
        )
    )
    if sitemap_index_url:
        env += plain_env(RobotsSettings(sitemap_index_url=sitemap_index_url), "sitemap_index_url")
    return env


def _probe(path: str, period: int, failures: int) -> ProbeArgs:
    return ProbeArgs(
        http_get=HTTPGetActionArgs(path=path, port="http"),
        initial_delay_seconds=5,
        period_seconds=period,
        timeout_seconds=3,
        failure_threshold=failures,
    )


def _node_port(spec: Any) -> int:
    return int(spec.ports[0].node_port)


def api_url(host: str | None, status: Any, node_port: int | None, scheme: str = "http") -> str:
    """The Ingress host, else the address the controller published, else the NodePort."""
    if host:
        return f"{scheme}://{host}/"
    balancer = getattr(status, "load_balancer", None)
    for entry in getattr(balancer, "ingress", None) or []:
        address = getattr(entry, "ip", None) or getattr(entry, "hostname", None)
        if address:
            return f"http://{address}/"
    return f"http://<node-ip>:{node_port}/ (NodePort; on minikube: minikube ip)"


class ImageApi(pulumi.ComponentResource):
    """The image API and the two ways in: NodePort Service, and Ingress or HTTPRoute."""

    service_name: pulumi.Output[str]
    node_port: pulumi.Output[int]
    ingress_name: pulumi.Output[str]
    url: pulumi.Output[str]
    # The largest image of each kind its pods convert, and the stack key that binds first.
    largest_images: dict[str, str]

    def __init__(
        self, name: str, args: ImageApiArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("kube-image-processing:index:ImageApi", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = args.config
        self.largest_images = largest_images_output(config)
        for warning in everyday_image_warnings(config):
            pulumi.log.warn(warning, resource=self)
        pod_labels = labels(COMPONENT)
        selector = selector_labels(COMPONENT)

        container = ContainerArgs(
            name=CONTAINER_NAME,
            image=args.image,
            image_pull_policy=args.image_pull_policy,
            ports=[ContainerPortArgs(name="http", container_port=HTTP_PORT)],
            env=api_env(config, args.storage, args.sitemap_index_url),
            liveness_probe=_probe("/healthz", 15, 3),
            readiness_probe=_probe("/readyz", 10, 3),
            resources=resource_requirements(config.resources),
            security_context=container_security_context(),
            volume_mounts=[tmp_mount(), VolumeMountArgs(name="metrics", mount_path=METRICS_DIR)],
            lifecycle=scaling.drain(config),
        )
        deployment = Deployment(
            name,
            metadata=ObjectMetaArgs(
                name=DEPLOYMENT_NAME, namespace=args.namespace, labels=pod_labels
            ),
            spec=DeploymentSpecArgs(
                replicas=scaling.replicas(config),
                selector=LabelSelectorArgs(match_labels=selector),
                strategy=DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=RollingUpdateDeploymentArgs(max_unavailable=0, max_surge=1),
                ),
                template=PodTemplateSpecArgs(
                    metadata=ObjectMetaArgs(labels=pod_labels),
                    spec=PodSpecArgs(
                        # The API never calls the Kubernetes API.
                        automount_service_account_token=False,
                        security_context=pod_security_context(APP_UID),
                        image_pull_secrets=[
                            LocalObjectReferenceArgs(name=secret)
                            for secret in args.pull_secret_names
                        ]
                        or None,
                        containers=[container],
                        topology_spread_constraints=scaling.spread(config, selector),
                        termination_grace_period_seconds=scaling.stop_seconds(config),
                        # A volume of its own, so the multiprocess metrics directory exists
                        # and starts empty in every pod.
                        volumes=[
                            tmp_volume("256Mi"),
                            VolumeArgs(
                                name="metrics",
                                empty_dir=EmptyDirVolumeSourceArgs(size_limit="64Mi"),
                            ),
                        ],
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=scaling.replica_options(config)
            ),
        )
        scaling.autoscaler(
            f"{name}-autoscaler",
            config,
            args.namespace,
            deployment.metadata.name,
            pod_labels,
            child,
        )
        scaling.disruption_budget(
            f"{name}-pdb", config, args.namespace, selector, pod_labels, child
        )

        # Open to every source, since NodePort traffic may arrive from any node's address,
        # but on the serving port only.
        ingress_policy(
            f"{name}-network-policy",
            namespace=args.namespace,
            component=COMPONENT,
            rules=[
                NetworkPolicyIngressRuleArgs(
                    ports=[NetworkPolicyPortArgs(protocol="TCP", port=HTTP_PORT)]
                )
            ],
            opts=child,
        )

        service = Service(
            f"{name}-service",
            metadata=ObjectMetaArgs(name=SERVICE_NAME, namespace=args.namespace, labels=pod_labels),
            spec=ServiceSpecArgs(
                type="NodePort",
                selector=selector,
                ports=[
                    ServicePortArgs(
                        name="http",
                        port=SERVICE_PORT,
                        target_port="http",
                        node_port=config.node_port,
                    )
                ],
            ),
            opts=child,
        )

        if args.gateway is not None:
            self.ingress_name = http_route(
                f"{name}-route",
                name=HTTPROUTE_NAME,
                namespace=args.namespace,
                labels=pod_labels,
                spec=api_route_spec(args.gateway, config, service.metadata.name),
                opts=child,
            )
            status: Any = None
        else:
            ingress = self._ingress(name, args, service)
            self.ingress_name = ingress.metadata.name
            status = ingress.status

        self.service_name = service.metadata.name
        self.node_port = service.spec.apply(_node_port)
        host = config.host
        scheme = args.scheme or ("https" if args.ingress.tls else "http")
        self.url = pulumi.Output.all(status, self.node_port).apply(
            lambda values: api_url(host, values[0], values[1], scheme)
        )
        self.register_outputs(
            {"service_name": self.service_name, "node_port": self.node_port, "url": self.url}
        )

    def _ingress(self, name: str, args: ImageApiArgs, service: Service) -> Ingress:
        """The nginx Ingress: every path of api.host to the Service."""
        config = args.config
        timeout = str(route_timeout_seconds(config.fetch_timeout_seconds))
        return Ingress(
            f"{name}-ingress",
            metadata=ObjectMetaArgs(
                name=INGRESS_NAME,
                namespace=args.namespace,
                labels=labels(COMPONENT),
                annotations={
                    # The API downloads the image before it answers (see
                    # service.settings.route_timeout_seconds), so nginx waits longer than that.
                    "nginx.ingress.kubernetes.io/proxy-read-timeout": timeout,
                    "nginx.ingress.kubernetes.io/proxy-send-timeout": timeout,
                    **skip_await_annotations(args.ingress.skip_await),
                    **tls_annotations(args.ingress.tls),
                },
            ),
            spec=IngressSpecArgs(
                ingress_class_name=args.ingress.class_name,
                tls=ingress_tls(args.ingress.tls, config.host, INGRESS_NAME) or None,
                rules=[
                    IngressRuleArgs(
                        host=config.host,
                        http=HTTPIngressRuleValueArgs(
                            paths=[
                                HTTPIngressPathArgs(
                                    path="/",
                                    path_type="Prefix",
                                    backend=IngressBackendArgs(
                                        service=IngressServiceBackendArgs(
                                            name=service.metadata.name,
                                            port=ServiceBackendPortArgs(name="http"),
                                        )
                                    ),
                                )
                            ]
                        ),
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
