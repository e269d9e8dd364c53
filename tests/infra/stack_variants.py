"""The ways the Pulumi program tests run the program: stack files, overrides, secrets."""

from __future__ import annotations

from typing import Any

from stack_render import Variant, stack_config


def dev_with(section: str, **fields: Any) -> dict[str, Any]:
    """One object of the dev stack file with `fields` set in it, as `config set --path` would."""
    return {**stack_config("dev")[f"kube-image-processing:{section}"], **fields}


PROD_SECRETS = {"registryPassword": "prod-registry-token-7f3a"}
SQL_SECRETS = {
    "minioRootUser": "configured-root-user-91c2",
    "minioRootPassword": "configured-root-password-5d7e",
    "sitemapDatabaseUrl": "postgresql://sitemaps:db-password-0b8d@db.example.com/catalog",
}
SQL_SITEMAPS = {
    "schedule": "15 4 * * 1-5",
    "host": "sitemaps.kube-image-processing.test",
    "source": "sql",
    "query": "SELECT loc, lastmod FROM items",
}
OTHER_MINIO_IMAGE = "quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z"
OPERATOR_KUBECONFIG = "/home/operator/.kube/config"
SHORT_ROOT_USER = "zq"
SHORT_ROOT_PASSWORD = "pw-7zq!"
FORMATTED_WITH_TWO = {"minio-topology": {"data": {"servers": "2", "drivesPerServer": "1"}}}
FORMATTED_WITH_FOUR = {"minio-topology": {"data": {"servers": "4", "drivesPerServer": "1"}}}
DEV_API_HOST = "images.kube-image-processing.test"
SECTIONS = [
    {"name": "products", "query": "SELECT loc, lastmod FROM products"},
    {"name": "blog-posts", "query": "SELECT loc, NULL FROM posts"},
]

GATEWAY_SECRETS = {
    "storageAccessKey": "external-access-key-3e9a",
    "storageSecretKey": "external-secret-key-71bd",
}
ENVOY_PROXY_LABELS = {"gateway.envoyproxy.io/owning-gateway-name": "shared-gateway"}
DEV_GATEWAY = {
    "kind": "gateway",
    "gateway": {"name": "dev-gateway", "proxyPodLabels": ENVOY_PROXY_LABELS},
}
PLAIN_EXTERNAL_S3 = {
    "kind": "external",
    "endpoint": "objects.storage.example.test:9000",
    "tls": False,
}

# Every way the tests run the program; all are rendered together, in forked children.
VARIANTS = {
    "dev": Variant("dev"),
    "prod": Variant("prod", secrets=PROD_SECRETS),
    "dev-sql": Variant("dev", secrets=SQL_SECRETS, overrides={"sitemaps": SQL_SITEMAPS}),
    "namespace": Variant("dev", overrides={"namespace": "images-test"}),
    "minio-1": Variant("dev", overrides={"minio": {"replicas": 1, "image": OTHER_MINIO_IMAGE}}),
    "minio-2": Variant("dev", overrides={"minio": {"replicas": 2}}),
    "minio-3": Variant("dev", overrides={"minio": {"replicas": 3}}),
    "preview": Variant("dev", preview=True, overrides={"image": {"buildOnPreview": False}}),
    "skip-await": Variant(
        "dev",
        overrides={
            "ingress": {"skipAwait": True},
            "api": {"nodePort": 30080, "host": DEV_API_HOST},
        },
    ),
    # The API on the Ingress's default server: no public name, so no bucket sitemap.
    "no-api-host": Variant("dev", overrides={"api": {}, "sitemaps": {"enabled": False}}),
    "no-api-host-bucket-sitemaps": Variant("dev", overrides={"api": {}}),
    "tls-secret": Variant(
        "dev", overrides={"ingress": {"className": "nginx", "tls": {"secretName": "site-tls"}}}
    ),
    "tls-issuer": Variant("dev", overrides={"ingress": {"tls": {"issuer": "local-ca"}}}),
    "tls-without-api-host": Variant(
        "dev",
        overrides={"ingress": {"tls": {"secretName": "site-tls"}}, "api": {}, "sitemaps": {}},
    ),
    "sql-sections": Variant(
        "dev",
        secrets=SQL_SECRETS,
        overrides={"sitemaps": {**SQL_SITEMAPS, "query": None, "sections": SECTIONS}},
    ),
    "sitemaps-off": Variant("dev", overrides={"sitemaps": {"enabled": False}}),
    # 400Mi for 2 workers: neither WebP kind converts a phone's photo.
    "api-small-memory": Variant(
        "dev", overrides={"api": dev_with("api", resources={"limits": {"memory": "400Mi"}})}
    ),
    "bad-replicas": Variant("dev", overrides={"api": {"replicas": -1}}),
    "bad-schedule": Variant("dev", overrides={"sitemaps": {"schedule": "every hour"}}),
    "prod-without-secret": Variant("prod"),
    "no-stack-file": Variant("bare", no_stack_file=True, overrides={"api": {"host": DEV_API_HOST}}),
    "bare": Variant("bare", no_stack_file=True),
    "kubeconfig-env": Variant("dev", environment={"KUBECONFIG": OPERATOR_KUBECONFIG}),
    "namespace-exists": Variant("dev", overrides={"namespace": "default", "namespaceExists": True}),
    "registry-helpers": Variant("dev", overrides={"image": {"registry": "ghcr.io/org"}}),
    "cluster-domain": Variant(
        "dev", overrides={"kubernetes": dev_with("kubernetes", clusterDomain="corp.internal")}
    ),
    "allowed-cidrs": Variant(
        "dev", overrides={"minio": dev_with("minio", allowedCidrs=["192.168.49.0/24"])}
    ),
    "topology-same": Variant("dev", previous=FORMATTED_WITH_FOUR),
    "topology-refused": Variant("dev", previous=FORMATTED_WITH_TWO),
    "topology-refused-preview": Variant("dev", previous=FORMATTED_WITH_TWO, preview=True),
    "topology-allowed": Variant(
        "dev",
        previous=FORMATTED_WITH_TWO,
        overrides={"minio": dev_with("minio", allowDataLoss=True)},
    ),
    "short-root-user": Variant(
        "dev", secrets={"minioRootUser": SHORT_ROOT_USER, "minioRootPassword": "long-enough-1"}
    ),
    "short-root-password": Variant(
        "dev", secrets={"minioRootUser": "root-user", "minioRootPassword": SHORT_ROOT_PASSWORD}
    ),
    # The third example stack file: Gateway API routing and external S3.
    "gateway": Variant("gateway", secrets=GATEWAY_SECRETS),
    # Today's defaults written out render exactly what the dev stack file renders.
    "dev-explicit-defaults": Variant(
        "dev", overrides={"routing": {"kind": "ingress"}, "storage": {"kind": "minio"}}
    ),
    "gateway-with-minio": Variant("dev", overrides={"routing": DEV_GATEWAY}),
    "gateway-preview": Variant("gateway", secrets=GATEWAY_SECRETS, preview=True),
    "gateway-sitemaps-off": Variant(
        "gateway",
        secrets=GATEWAY_SECRETS,
        overrides={
            "sitemaps": {"enabled": False},
            "routing": {"kind": "gateway", "gateway": {"name": "gw", "requestTimeout": False}},
        },
    ),
    "ingress-with-external-s3": Variant(
        "dev",
        secrets=GATEWAY_SECRETS,
        overrides={"storage": {**PLAIN_EXTERNAL_S3, "region": "eu-west-1"}},
    ),
    "external-tls-without-sitemaps": Variant(
        "gateway",
        secrets=GATEWAY_SECRETS,
        overrides={
            "storage": {**PLAIN_EXTERNAL_S3, "tls": True},
            "sitemaps": {"enabled": False},
        },
    ),
    # The API scaled by an autoscaler on dev; prod after the autoscaler moved the count to 9.
    "api-autoscaled": Variant(
        "dev",
        overrides={
            "api": {
                **{k: v for k, v in dev_with("api").items() if k != "replicas"},
                "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 3},
                "drainSeconds": 12,
            }
        },
    ),
    "api-one-replica": Variant("dev", overrides={"api": dev_with("api", replicas=1)}),
    "prod-second-up": Variant(
        "prod", secrets=PROD_SECRETS, previous={"image-api": {"spec": {"replicas": 9}}}
    ),
    "gateway-external-tls-refused": Variant(
        "gateway",
        secrets=GATEWAY_SECRETS,
        overrides={"storage": {**PLAIN_EXTERNAL_S3, "tls": True}},
    ),
}
STACKS = ("dev", "prod", "dev-sql")
