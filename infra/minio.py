"""MinioCluster: MinIO object storage as a StatefulSet behind a headless Service."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_random as random
from pulumi_kubernetes.apps.v1 import (
    StatefulSet,
    StatefulSetPersistentVolumeClaimRetentionPolicyArgs,
    StatefulSetSpecArgs,
)
from pulumi_kubernetes.core.v1 import (
    AffinityArgs,
    ConfigMap,
    ContainerArgs,
    ContainerPortArgs,
    EnvVarArgs,
    HTTPGetActionArgs,
    PersistentVolumeClaimArgs,
    PersistentVolumeClaimSpecArgs,
    PodAffinityTermArgs,
    PodAntiAffinityArgs,
    PodSpecArgs,
    PodTemplateSpecArgs,
    ProbeArgs,
    Secret,
    Service,
    ServicePortArgs,
    ServiceSpecArgs,
    VolumeMountArgs,
    VolumeResourceRequirementsArgs,
    WeightedPodAffinityTermArgs,
)
from pulumi_kubernetes.meta.v1 import LabelSelectorArgs, ObjectMetaArgs
from pulumi_kubernetes.networking.v1 import (
    IPBlockArgs,
    NetworkPolicyIngressRuleArgs,
    NetworkPolicyPeerArgs,
    NetworkPolicyPortArgs,
)
from pulumi_kubernetes.policy.v1 import PodDisruptionBudget, PodDisruptionBudgetSpecArgs

from infra.common import (
    INGRESS_CONTROLLER_LABELS,
    MINIO_API_PORT,
    MINIO_CONSOLE_PORT,
    MINIO_PASSWORD_KEY,
    MINIO_USER_KEY,
    StorageAccess,
    container_security_context,
    ingress_policy,
    labels,
    pod_security_context,
    resource_requirements,
    secret_env,
    secret_value,
    selector_labels,
    tmp_mount,
    tmp_volume,
)
from infra.config.base import PROJECT, ConfigError
from infra.config.minio import MinioConfig
from service.settings import MinioServerSettings, env_name, env_text, field_problem

COMPONENT = "minio"
STATEFULSET_NAME = "minio"
HEADLESS_SERVICE_NAME = "minio-hl"
CLIENT_SERVICE_NAME = "minio"
# A UID of its own, above the host's range of user accounts (which ends at 9999 or below).
MINIO_UID = 10002
TOPOLOGY_CONFIGMAP_NAME = "minio-topology"
DATA_PATH = "/data"
PDB_MIN_REPLICAS = 4


@dataclass
class MinioClusterArgs:
    """Inputs of MinioCluster."""

    namespace: pulumi.Input[str]
    config: MinioConfig
    cluster_domain: str
    # The secrets minioRootUser and minioRootPassword; generated where None.
    root_user: pulumi.Output[str] | None = None
    root_password: pulumi.Output[str] | None = None
    # The pods that serve the sitemaps route: ingress-nginx's controller, or a Gateway's proxies.
    proxy_pod_labels: Mapping[str, str] = field(
        default_factory=lambda: dict(INGRESS_CONTROLLER_LABELS)
    )


def server_args(config: MinioConfig, namespace: str, cluster_domain: str) -> list[str]:
    """`minio server` arguments: one drive standalone, or every peer through the headless Service."""
    if config.distributed:
        # Fully qualified, so no resolver search list is involved: MinIO resolves every peer,
        # before any is ready, to find which endpoint is its own.
        peers = (
            f"http://{STATEFULSET_NAME}-{{0...{config.replicas - 1}}}."
            f"{HEADLESS_SERVICE_NAME}.{namespace}.svc.{cluster_domain}{DATA_PATH}"
        )
        drives = [peers]
    else:
        drives = [DATA_PATH]
    # Without a fixed console address MinIO picks a random port, which no Service could name;
    # the certs directory moves to /tmp because the root file system is read-only.
    return [
        "server",
        *drives,
        "--address",
        f":{MINIO_API_PORT}",
        "--console-address",
        f":{MINIO_CONSOLE_PORT}",
        "--certs-dir",
        "/tmp/certs",  # noqa: S108 - the pod's own emptyDir
    ]


def claim_name(config: MinioConfig) -> str:
    """The volume claim template's name, one per topology.

    An allowed topology change (minio.allowDataLoss) thus gets fresh, empty volumes through
    the StatefulSet's replacement, while the old claims stay (Retain) for recovery.
    """
    return f"data-{config.replicas}x1"


def topology_record(config: MinioConfig) -> dict[str, str]:
    """What the topology ConfigMap records: the server layout MinIO was formatted with."""
    return {"servers": str(config.replicas), "drivesPerServer": "1"}


def topology_error(recorded: Mapping[str, str] | None, config: MinioConfig) -> str | None:
    """Why the configured topology cannot replace the recorded one, or None."""
    if not recorded or config.allow_data_loss:
        return None
    servers = recorded.get("servers")
    if servers is None or servers == str(config.replicas):
        return None
    return (
        f"minio.replicas cannot change from {servers} to {config.replicas}: MinIO was "
        f"formatted with {servers} server(s) and refuses to start with another count. To grow, "
        "add a server pool (README, Scaling); to start an empty MinIO with the new count "
        "instead, set minio.allowDataLoss=true (the old volumes are kept, unused)"
    )


def _checked(value: str, key: str, field: str) -> str:
    wrong = field_problem(MinioServerSettings, field, value)
    if wrong is not None:
        # The message never holds the value: it is a secret.
        raise ConfigError(
            f"{key}: {wrong}, as MinIO requires; set it with pulumi config set --secret {key} "
            "<value>, or remove it to have one generated"
        )
    return value


def checked_credential(value: pulumi.Output[str], key: str, field: str) -> pulumi.Output[str]:
    """`value`, refused inside the apply when MinIO would refuse it, so it is never printed."""
    return value.apply(lambda text: _checked(text, key, field))


def _api_port_rule(
    config: MinioConfig, proxy_pod_labels: Mapping[str, str]
) -> NetworkPolicyIngressRuleArgs:
    """Only this project's pods (peers, API, sitemap job) and the routing proxies reach MinIO.

    The proxies (ingress-nginx's controller, or the Gateway's data plane) are matched by their
    pod labels; a proxy on the host network has the node's address instead, which only
    `minio.allowedCidrs` (ipBlock) admits. The console is reached with `kubectl port-forward`,
    which NetworkPolicy does not filter.
    """
    return NetworkPolicyIngressRuleArgs(
        from_=[
            NetworkPolicyPeerArgs(
                pod_selector=LabelSelectorArgs(match_labels={"app.kubernetes.io/part-of": PROJECT})
            ),
            # The sitemaps route is served by MinIO itself.
            *(
                [
                    NetworkPolicyPeerArgs(
                        namespace_selector=LabelSelectorArgs(),
                        pod_selector=LabelSelectorArgs(match_labels=dict(proxy_pod_labels)),
                    )
                ]
                if proxy_pod_labels
                else []
            ),
            *(
                NetworkPolicyPeerArgs(ip_block=IPBlockArgs(cidr=cidr))
                for cidr in config.allowed_cidrs
            ),
        ],
        ports=[NetworkPolicyPortArgs(protocol="TCP", port=MINIO_API_PORT)],
    )


def _anti_affinity(config: MinioConfig) -> AffinityArgs:
    term = PodAffinityTermArgs(
        topology_key="kubernetes.io/hostname",
        label_selector=LabelSelectorArgs(match_labels=selector_labels(COMPONENT)),
    )
    if config.anti_affinity == "hard":
        return AffinityArgs(
            pod_anti_affinity=PodAntiAffinityArgs(
                required_during_scheduling_ignored_during_execution=[term]
            )
        )
    return AffinityArgs(
        pod_anti_affinity=PodAntiAffinityArgs(
            preferred_during_scheduling_ignored_during_execution=[
                WeightedPodAffinityTermArgs(weight=100, pod_affinity_term=term)
            ]
        )
    )


def _probe(path: str, period: int, failures: int) -> ProbeArgs:
    return ProbeArgs(
        http_get=HTTPGetActionArgs(path=path, port=MINIO_API_PORT, scheme="HTTP"),
        initial_delay_seconds=10,
        period_seconds=period,
        timeout_seconds=5,
        failure_threshold=failures,
    )


def _checked_replicas(recorded: Mapping[str, str] | None, config: MinioConfig) -> int:
    error = topology_error(recorded, config)
    if error:
        raise ConfigError(error)
    return config.replicas


class MinioCluster(pulumi.ComponentResource):
    """MinIO: credentials Secret, headless and client Services, StatefulSet and PDB."""

    endpoint: pulumi.Output[str]
    service_name: pulumi.Output[str]
    secret_name: pulumi.Output[str]
    statefulset_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: MinioClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("kube-image-processing:index:MinioCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = args.config
        pod_labels = labels(COMPONENT)
        selector = selector_labels(COMPONENT)

        if args.root_user is None:
            root_user = random.RandomPassword(
                f"{name}-root-user", length=20, special=False, upper=False, opts=child
            ).result
        else:
            root_user = checked_credential(args.root_user, "minioRootUser", "root_user")
        if args.root_password is None:
            root_password = random.RandomPassword(
                f"{name}-root-password", length=40, special=False, opts=child
            ).result
        else:
            root_password = checked_credential(
                args.root_password, "minioRootPassword", "root_password"
            )

        secret = Secret(
            f"{name}-credentials",
            metadata=ObjectMetaArgs(namespace=args.namespace, labels=pod_labels),
            type="Opaque",
            string_data={
                MINIO_USER_KEY: secret_value(root_user),
                MINIO_PASSWORD_KEY: secret_value(root_password),
            },
            opts=child,
        )

        ports = [
            ServicePortArgs(name="api", port=MINIO_API_PORT, target_port="api"),
            ServicePortArgs(name="console", port=MINIO_CONSOLE_PORT, target_port="console"),
        ]
        headless = Service(
            f"{name}-headless",
            metadata=ObjectMetaArgs(
                name=HEADLESS_SERVICE_NAME, namespace=args.namespace, labels=pod_labels
            ),
            spec=ServiceSpecArgs(
                cluster_ip="None",
                # Peers must resolve each other before any of them is ready.
                publish_not_ready_addresses=True,
                selector=selector,
                ports=ports,
            ),
            opts=child,
        )
        client = Service(
            f"{name}-client",
            metadata=ObjectMetaArgs(
                name=CLIENT_SERVICE_NAME, namespace=args.namespace, labels=pod_labels
            ),
            spec=ServiceSpecArgs(type="ClusterIP", selector=selector, ports=ports),
            opts=child,
        )

        env = [
            secret_env(
                env_name(MinioServerSettings, "root_user"), secret.metadata.name, MINIO_USER_KEY
            ),
            secret_env(
                env_name(MinioServerSettings, "root_password"),
                secret.metadata.name,
                MINIO_PASSWORD_KEY,
            ),
        ]
        if config.ci_cd_mode:
            # minikube's hostPath volumes sit on the node's root disk, which MinIO refuses
            # ("refusing to use root disk") unless told it runs for development.
            env.append(
                EnvVarArgs(name=env_name(MinioServerSettings, "ci_cd"), value=env_text(True))
            )

        # Records the topology MinIO was first formatted with: ignore_changes keeps the recorded
        # data in the state, so its output is the previous topology on every later preview and
        # update, which the apply below compares with the configured one: MinIO refuses to start
        # with another server count than the one it formatted its drives with.
        topology = ConfigMap(
            f"{name}-topology",
            metadata=ObjectMetaArgs(
                name=TOPOLOGY_CONFIGMAP_NAME, namespace=args.namespace, labels=pod_labels
            ),
            data=topology_record(config),
            opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=[] if config.allow_data_loss else ["data"]
            ),
        )
        replicas = topology.data.apply(lambda recorded: _checked_replicas(recorded, config))

        data_volume = claim_name(config)
        claim_template = PersistentVolumeClaimArgs(
            metadata=ObjectMetaArgs(name=data_volume, labels=pod_labels),
            spec=PersistentVolumeClaimSpecArgs(
                access_modes=["ReadWriteOnce"],
                storage_class_name=config.storage_class,
                resources=VolumeResourceRequirementsArgs(requests={"storage": config.storage_size}),
            ),
        )
        statefulset = StatefulSet(
            name,
            metadata=ObjectMetaArgs(
                name=STATEFULSET_NAME, namespace=args.namespace, labels=pod_labels
            ),
            spec=StatefulSetSpecArgs(
                replicas=replicas,
                service_name=headless.metadata.name,
                # OrderedReady would wait for pod 0, which waits for its peers.
                pod_management_policy="Parallel",
                selector=LabelSelectorArgs(match_labels=selector),
                persistent_volume_claim_retention_policy=(
                    StatefulSetPersistentVolumeClaimRetentionPolicyArgs(
                        when_deleted="Retain", when_scaled="Retain"
                    )
                ),
                template=PodTemplateSpecArgs(
                    metadata=ObjectMetaArgs(labels=pod_labels),
                    spec=PodSpecArgs(
                        automount_service_account_token=False,
                        security_context=pod_security_context(MINIO_UID),
                        affinity=_anti_affinity(config),
                        termination_grace_period_seconds=60,
                        containers=[
                            ContainerArgs(
                                name="minio",
                                image=config.image,
                                image_pull_policy="IfNotPresent",
                                args=pulumi.Output.from_input(args.namespace).apply(
                                    lambda namespace: server_args(
                                        config, namespace, args.cluster_domain
                                    )
                                ),
                                env=env,
                                ports=[
                                    ContainerPortArgs(name="api", container_port=MINIO_API_PORT),
                                    ContainerPortArgs(
                                        name="console", container_port=MINIO_CONSOLE_PORT
                                    ),
                                ],
                                liveness_probe=_probe("/minio/health/live", 20, 3),
                                readiness_probe=_probe("/minio/health/ready", 10, 6),
                                resources=resource_requirements(config.resources),
                                security_context=container_security_context(),
                                volume_mounts=[
                                    VolumeMountArgs(name=data_volume, mount_path=DATA_PATH),
                                    tmp_mount(),
                                ],
                            )
                        ],
                        volumes=[tmp_volume("64Mi")],
                    ),
                ),
                volume_claim_templates=[claim_template],
            ),
            # volumeClaimTemplates cannot change in place: a new size or storage
            # class replaces the StatefulSet, deleting it first because its name is fixed, and
            # the Retain policy keeps the PVCs, which the new StatefulSet adopts again.
            opts=pulumi.ResourceOptions(
                parent=self,
                replace_on_changes=["spec.volumeClaimTemplates"],
                delete_before_replace=True,
                depends_on=[headless],
            ),
        )

        ingress_policy(
            f"{name}-network-policy",
            namespace=args.namespace,
            component=COMPONENT,
            rules=[_api_port_rule(config, args.proxy_pod_labels)],
            opts=child,
        )

        if config.replicas >= PDB_MIN_REPLICAS:
            PodDisruptionBudget(
                f"{name}-pdb",
                metadata=ObjectMetaArgs(namespace=args.namespace, labels=pod_labels),
                spec=PodDisruptionBudgetSpecArgs(
                    max_unavailable=1, selector=LabelSelectorArgs(match_labels=selector)
                ),
                opts=child,
            )

        self.service_name = client.metadata.name
        self.secret_name = secret.metadata.name
        self.endpoint = pulumi.Output.concat(
            client.metadata.name,
            ".",
            client.metadata.namespace,
            f".svc.{args.cluster_domain}:",
            str(MINIO_API_PORT),
        )
        self.statefulset_name = statefulset.metadata.name
        self.register_outputs(
            {
                "endpoint": self.endpoint,
                "service_name": self.service_name,
                "secret_name": self.secret_name,
                "statefulset_name": self.statefulset_name,
            }
        )

    @property
    def access(self) -> StorageAccess:
        """What client workloads need to reach this MinIO."""
        return StorageAccess(
            endpoint=self.endpoint, secret_name=self.secret_name, service_name=self.service_name
        )
