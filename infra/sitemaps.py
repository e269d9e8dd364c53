"""SitemapPublisher: the sitemap CronJob, its narrow RBAC and the Ingress or HTTPRoute it switches."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
from pulumi_kubernetes.batch.v1 import (
    CronJob,
    CronJobSpecArgs,
    JobSpecArgs,
    JobTemplateSpecArgs,
)
from pulumi_kubernetes.core.v1 import (
    ContainerArgs,
    EnvVarArgs,
    EnvVarSourceArgs,
    LocalObjectReferenceArgs,
    ObjectFieldSelectorArgs,
    PodSpecArgs,
    PodTemplateSpecArgs,
    Secret,
    ServiceAccount,
)
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs
from pulumi_kubernetes.networking.v1 import (
    HTTPIngressPathArgs,
    HTTPIngressRuleValueArgs,
    Ingress,
    IngressBackendArgs,
    IngressRuleArgs,
    IngressServiceBackendArgs,
    IngressSpecArgs,
    ServiceBackendPortArgs,
)
from pulumi_kubernetes.rbac.v1 import (
    PolicyRuleArgs,
    Role,
    RoleBinding,
    RoleRefArgs,
    SubjectArgs,
)

from infra.common import (
    APP_UID,
    StorageAccess,
    api_access_mount,
    api_access_volume,
    container_security_context,
    ingress_policy,
    labels,
    plain_env,
    pod_security_context,
    resource_requirements,
    secret_env,
    secret_value,
    skip_await_annotations,
    storage_env,
    tmp_mount,
    tmp_volume,
)
from infra.config.cluster import IngressConfig
from infra.config.routing import GatewayConfig
from infra.config.sitemaps import SitemapsConfig
from infra.gateway import GROUP, PrefixRewrite, RouteRule, RouteSpec, ServiceBackend, http_route
from infra.tls import ingress_tls, tls_annotations
from service.settings import SitemapSettings, env_name
from service.sitemaps.sections import Query, to_json

COMPONENT = "sitemap-publisher"
INGRESS_NAME = "sitemaps"
WORKLOAD_NAME = "sitemap-publisher"
REWRITE_ANNOTATION = "nginx.ingress.kubernetes.io/rewrite-target"
UPSTREAM_VHOST_ANNOTATION = "nginx.ingress.kubernetes.io/upstream-vhost"
LIVE_BUCKET_LABEL = "kube-image-processing/live-bucket"
SITEMAPS_PATH = "/sitemaps(/|$)(.*)"
JOB_COMMAND = ["python", "-m", "service.sitemaps", "publish"]
DATABASE_URL_KEY = "url"
# The two fields that the job patches at run time. pulumi-kubernetes uses server-side apply, so
# the next `pulumi up` would revert a declared one to the program's value. The program never declares them,
# so under server-side apply Pulumi's field manager never owns them and never sends them: a
# declared placeholder would conflict with the job's value on the next update of this Ingress,
# because pulumi-kubernetes cannot carry a live value over for a key holding dots. Ignoring
# them as well keeps any other diff path (client-side apply, refresh) from touching them.
SWITCHED_FIELDS = (
    f'metadata.annotations["{REWRITE_ANNOTATION}"]',
    f'metadata.labels["{LIVE_BUCKET_LABEL}"]',
)
# Gateway API: the HTTPRoute the job switches has this fixed name too (SITEMAP_HTTPROUTE).
HTTPROUTE_NAME = "sitemaps"
SITEMAPS_PREFIX = "/sitemaps"
# What the route rewrites /sitemaps to before the first publication: a bucket that never
# exists, because generation buckets are named sitemaps-<timestamp>... (service.sitemaps.naming).
UNPUBLISHED_PREFIX = "/sitemaps-unpublished"
# The job patches /spec/rules/0/filters/0/urlRewrite/path/replacePrefixMatch and sets the label.
# spec.rules is an atomic list in the Gateway API CRD (+listType=atomic), so under server-side
# apply one manager owns the whole list: the job's patch takes it over, and on the next update
# pulumi-kubernetes' handleSSAIgnoreFields drops spec.rules from the apply because another
# manager owns it and Pulumi no longer does. Before the first publication Pulumi still owns it and
# the same function carries the live value over (a dot-free path, which it can split). Either
# way the program's rules are only ever applied when the route is created: a changed backend
# needs `pulumi up --replace` on the route and then a publication (README).
ROUTE_SWITCHED_FIELDS = ("spec.rules", f'metadata.labels["{LIVE_BUCKET_LABEL}"]')


@dataclass
class SitemapPublisherArgs:
    """Inputs of SitemapPublisher."""

    namespace: pulumi.Input[str]
    config: SitemapsConfig
    ingress: IngressConfig
    image: pulumi.Input[str]
    image_pull_policy: str
    storage: StorageAccess
    processed_bucket: str
    # The secret sitemapDatabaseUrl of the SQL source.
    database_url: pulumi.Output[str] | None = None
    pull_secret_names: list[pulumi.Output[str]] = field(default_factory=list)
    # Set: HTTPRoutes attached to this Gateway instead of the nginx Ingress.
    gateway: GatewayConfig | None = None


def sitemaps_route_spec(
    gateway: GatewayConfig, host: str, storage: StorageAccess, prefix: str = UNPUBLISHED_PREFIX
) -> RouteSpec:
    """The sitemaps HTTPRoute: one rule whose first filter is the switched URLRewrite."""
    return RouteSpec(
        gateway=gateway,
        hostnames=(host,),
        rules=(
            RouteRule(
                path_prefix=SITEMAPS_PREFIX,
                filters=(PrefixRewrite(prefix, hostname=storage.route_host),),
                backend=ServiceBackend(storage.service_name, storage.service_port),
            ),
        ),
    )


class SitemapPublisher(pulumi.ComponentResource):
    """Publishes sitemap generations into S3 buckets and switches an Ingress or HTTPRoute."""

    ingress_name: pulumi.Output[str]
    cronjob_name: pulumi.Output[str]
    index_url: pulumi.Output[str]

    def __init__(
        self, name: str, args: SitemapPublisherArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("kube-image-processing:index:SitemapPublisher", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = args.config
        pod_labels = labels(COMPONENT)

        route_name: pulumi.Output[str]
        if args.gateway is not None:
            route_name = http_route(
                f"{name}-route",
                name=HTTPROUTE_NAME,
                namespace=args.namespace,
                labels=labels("sitemaps"),
                spec=sitemaps_route_spec(args.gateway, config.host, args.storage),
                opts=pulumi.ResourceOptions(
                    parent=self, ignore_changes=list(ROUTE_SWITCHED_FIELDS)
                ),
            )
        else:
            route_name = self._ingress(name, args).metadata.name

        account = ServiceAccount(
            f"{name}-account",
            metadata=ObjectMetaArgs(
                name=WORKLOAD_NAME, namespace=args.namespace, labels=pod_labels
            ),
            opts=child,
        )
        role = Role(
            f"{name}-role",
            metadata=ObjectMetaArgs(
                name=WORKLOAD_NAME, namespace=args.namespace, labels=pod_labels
            ),
            rules=[
                PolicyRuleArgs(
                    api_groups=[GROUP] if args.gateway is not None else ["networking.k8s.io"],
                    resources=["httproutes"] if args.gateway is not None else ["ingresses"],
                    resource_names=[route_name],
                    verbs=["get", "patch"],
                )
            ],
            opts=child,
        )
        RoleBinding(
            f"{name}-role-binding",
            metadata=ObjectMetaArgs(
                name=WORKLOAD_NAME, namespace=args.namespace, labels=pod_labels
            ),
            role_ref=RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="Role", name=role.metadata.name
            ),
            subjects=[
                SubjectArgs(
                    kind="ServiceAccount", name=account.metadata.name, namespace=args.namespace
                )
            ],
            opts=child,
        )

        env = storage_env(args.storage, processed_bucket=args.processed_bucket)
        job = SitemapSettings(
            base_url=config.base_url,
            source=config.source,
            retain=config.retain,
            site_url=config.site_url,
            query=config.query,
            sections=to_json(Query(s.name, s.query) for s in config.sections)
            if config.sections
            else None,
        )
        env += plain_env(job, "base_url", "source")
        env += [
            EnvVarArgs(
                name=env_name(SitemapSettings, "httproute" if args.gateway else "ingress"),
                value=route_name,
            ),
            EnvVarArgs(
                name=env_name(SitemapSettings, "namespace"),
                value_from=EnvVarSourceArgs(
                    field_ref=ObjectFieldSelectorArgs(field_path="metadata.namespace")
                ),
            ),
        ]
        env += plain_env(job, "retain")
        # The bucket source lists each processed image under the API's public URL.
        env += plain_env(
            job, *(key for key in ("site_url", "query", "sections") if getattr(job, key))
        )
        if config.source == "sql" and args.database_url is not None:
            database = Secret(
                f"{name}-database",
                metadata=ObjectMetaArgs(namespace=args.namespace, labels=pod_labels),
                type="Opaque",
                string_data={DATABASE_URL_KEY: secret_value(args.database_url)},
                opts=child,
            )
            env.append(
                secret_env(
                    env_name(SitemapSettings, "database_url"),
                    database.metadata.name,
                    DATABASE_URL_KEY,
                )
            )

        # Nothing connects to a batch job.
        ingress_policy(
            f"{name}-network-policy",
            namespace=args.namespace,
            component=COMPONENT,
            rules=[],
            opts=child,
        )

        cronjob = CronJob(
            name,
            metadata=ObjectMetaArgs(
                name=WORKLOAD_NAME, namespace=args.namespace, labels=pod_labels
            ),
            spec=CronJobSpecArgs(
                schedule=config.schedule,
                time_zone=config.time_zone,
                # Two publishers at once would race for the Ingress switch.
                concurrency_policy="Forbid",
                starting_deadline_seconds=600,
                successful_jobs_history_limit=3,
                failed_jobs_history_limit=3,
                job_template=JobTemplateSpecArgs(
                    metadata=ObjectMetaArgs(labels=pod_labels),
                    spec=JobSpecArgs(
                        backoff_limit=config.backoff_limit,
                        active_deadline_seconds=config.active_deadline_seconds,
                        ttl_seconds_after_finished=7 * 24 * 3600,
                        template=PodTemplateSpecArgs(
                            metadata=ObjectMetaArgs(labels=pod_labels),
                            spec=PodSpecArgs(
                                service_account_name=account.metadata.name,
                                # The token is mounted explicitly, into the publisher only.
                                automount_service_account_token=False,
                                restart_policy="Never",
                                security_context=pod_security_context(APP_UID),
                                image_pull_secrets=[
                                    LocalObjectReferenceArgs(name=secret)
                                    for secret in args.pull_secret_names
                                ]
                                or None,
                                containers=[
                                    ContainerArgs(
                                        name="publisher",
                                        image=args.image,
                                        image_pull_policy=args.image_pull_policy,
                                        command=JOB_COMMAND,
                                        env=env,
                                        resources=resource_requirements(config.resources),
                                        security_context=container_security_context(),
                                        volume_mounts=[tmp_mount(), api_access_mount()],
                                    )
                                ],
                                volumes=[tmp_volume(config.scratch_size), api_access_volume()],
                            ),
                        ),
                    ),
                ),
            ),
            opts=child,
        )

        self.ingress_name = route_name
        self.cronjob_name = cronjob.metadata.name
        self.index_url = pulumi.Output.from_input(config.index_url)
        self.register_outputs(
            {
                "ingress_name": self.ingress_name,
                "cronjob_name": self.cronjob_name,
                "index_url": self.index_url,
            }
        )

    def _ingress(self, name: str, args: SitemapPublisherArgs) -> Ingress:
        """The nginx Ingress the job switches by its rewrite-target annotation."""
        config = args.config
        return Ingress(
            f"{name}-ingress",
            metadata=ObjectMetaArgs(
                # A fixed name: the Role's resourceNames and the job's SITEMAP_INGRESS use it.
                name=INGRESS_NAME,
                namespace=args.namespace,
                labels=labels("sitemaps"),
                # No rewrite-target until the first publication: the job adds it (see above).
                annotations={
                    "nginx.ingress.kubernetes.io/use-regex": "true",
                    **skip_await_annotations(args.ingress.skip_await),
                    **tls_annotations(args.ingress.tls),
                    # An external S3 answers for its own name, not the public sitemaps host.
                    **(
                        {UPSTREAM_VHOST_ANNOTATION: args.storage.route_host}
                        if args.storage.route_host
                        else {}
                    ),
                },
            ),
            spec=IngressSpecArgs(
                ingress_class_name=args.ingress.class_name,
                tls=ingress_tls(args.ingress.tls, config.host, INGRESS_NAME) or None,
                rules=[
                    IngressRuleArgs(
                        # A host of its own: ingress-nginx applies use-regex and rewrite-target
                        # to every path of a host, which would break the API's routes.
                        host=config.host,
                        http=HTTPIngressRuleValueArgs(
                            paths=[
                                HTTPIngressPathArgs(
                                    path=SITEMAPS_PATH,
                                    path_type="ImplementationSpecific",
                                    backend=IngressBackendArgs(
                                        service=IngressServiceBackendArgs(
                                            name=args.storage.service_name,
                                            port=ServiceBackendPortArgs(
                                                number=args.storage.service_port
                                            ),
                                        )
                                    ),
                                )
                            ]
                        ),
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=list(SWITCHED_FIELDS)),
        )
