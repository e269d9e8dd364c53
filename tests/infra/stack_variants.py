"""The ways the Pulumi program tests run the program: stack files, overrides, secrets."""

from __future__ import annotations

from stack_render import Variant

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
DEV_API_HOST = "images.kube-image-processing.test"
SECTIONS = [
    {"name": "products", "query": "SELECT loc, lastmod FROM products"},
    {"name": "blog-posts", "query": "SELECT loc, NULL FROM posts"},
]

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
    "bad-replicas": Variant("dev", overrides={"api": {"replicas": -1}}),
    "bad-schedule": Variant("dev", overrides={"sitemaps": {"schedule": "every hour"}}),
    "prod-without-secret": Variant("prod"),
    "no-stack-file": Variant("bare", no_stack_file=True, overrides={"api": {"host": DEV_API_HOST}}),
    "bare": Variant("bare", no_stack_file=True),
}
STACKS = ("dev", "prod", "dev-sql")
