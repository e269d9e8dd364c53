"""Public URLs, TLS, robots.txt's sitemap and sitemap sections, as the program renders them."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
from k8s_objects import containers, env
from stack_render import Rendered
from stack_variants import SECTIONS
from test_config import parse

from infra.config import ConfigError

SSL_REDIRECT = "nginx.ingress.kubernetes.io/ssl-redirect"
CLUSTER_ISSUER = "cert-manager.io/cluster-issuer"
ISSUER = "cert-manager.io/issuer"
SECRET = object()  # stands in for a secret Output; the parser only checks presence


def values(obj: dict[str, Any]) -> dict[str, str | None]:
    return {name: entry.get("value") for name, entry in env(containers(obj)[0]).items()}


def api_values(stack: Rendered) -> dict[str, str | None]:
    return values(stack.one("Deployment", "image-api"))


def job_values(stack: Rendered) -> dict[str, str | None]:
    return values(stack.one("CronJob", "sitemap-publisher"))


def host_of(ingress: dict[str, Any]) -> str:
    (rule,) = ingress["spec"]["rules"]
    return str(rule["host"])


def test_every_published_url_names_the_host_whose_ingress_serves_it(stack: Rendered) -> None:
    """The dev stack once listed images under the sitemaps host, which routes only /sitemaps."""
    job = job_values(stack)
    scheme = "https" if stack.one("Ingress", "sitemaps")["spec"].get("tls") else "http"
    base = urlsplit(str(job["SITEMAP_BASE_URL"]))
    assert (base.scheme, base.netloc) == (scheme, host_of(stack.one("Ingress", "sitemaps")))
    if job["SITEMAP_SOURCE"] == "bucket":
        site = urlsplit(str(job["SITEMAP_SITE_URL"]))
        assert (site.scheme, site.netloc) == (scheme, host_of(stack.one("Ingress", "image-api")))


def test_the_api_names_the_sitemap_index_for_robots_txt(stack: Rendered, variant) -> None:
    """Cross-host sitemaps count only where the listed host's robots.txt names them."""
    assert api_values(stack)["SITEMAP_INDEX_URL"] == stack.outputs["sitemaps_url"]["value"]
    assert "SITEMAP_INDEX_URL" not in api_values(variant("sitemaps-off"))


def test_index_urls_of_the_stack_files(dev: Rendered, prod: Rendered) -> None:
    assert api_values(dev)["SITEMAP_INDEX_URL"] == (
        "http://sitemaps.kube-image-processing.test/sitemaps/sitemap.xml"
    )
    assert (
        api_values(prod)["SITEMAP_INDEX_URL"] == "https://sitemaps.example.com/sitemaps/sitemap.xml"
    )


def test_dev_has_no_tls(dev: Rendered) -> None:
    for ingress in dev.of_kind("Ingress"):
        assert "tls" not in ingress["spec"]
        annotations = ingress["metadata"]["annotations"]
        assert not {SSL_REDIRECT, CLUSTER_ISSUER, ISSUER} & set(annotations)


def test_prod_gets_certificates_from_its_cluster_issuer(prod: Rendered) -> None:
    for name in ("image-api", "sitemaps"):
        ingress = prod.one("Ingress", name)
        assert ingress["spec"]["tls"] == [
            {"hosts": [host_of(ingress)], "secretName": f"{name}-tls"}
        ]
        annotations = ingress["metadata"]["annotations"]
        assert annotations[CLUSTER_ISSUER] == "letsencrypt-prod"
        assert annotations[SSL_REDIRECT] == "true"
        assert ISSUER not in annotations
    assert prod.outputs["api_url"]["value"] == "https://images.example.com/"
    assert prod.outputs["sitemaps_url"]["value"].startswith("https://")


def test_an_existing_secret_serves_both_hosts_and_every_url_turns_https(variant) -> None:
    stack = variant("tls-secret")
    for ingress in stack.of_kind("Ingress"):
        assert ingress["spec"]["tls"] == [{"hosts": [host_of(ingress)], "secretName": "site-tls"}]
        annotations = ingress["metadata"]["annotations"]
        assert annotations[SSL_REDIRECT] == "true"
        assert not {CLUSTER_ISSUER, ISSUER} & set(annotations)
    job = job_values(stack)
    assert job["SITEMAP_BASE_URL"] == "https://sitemaps.kube-image-processing.test/sitemaps"
    assert job["SITEMAP_SITE_URL"] == "https://images.kube-image-processing.test"
    assert api_values(stack)["SITEMAP_INDEX_URL"] == (
        "https://sitemaps.kube-image-processing.test/sitemaps/sitemap.xml"
    )
    assert stack.outputs["api_url"]["value"] == "https://images.kube-image-processing.test/"


def test_a_namespaced_issuer(variant) -> None:
    for ingress in variant("tls-issuer").of_kind("Ingress"):
        annotations = ingress["metadata"]["annotations"]
        assert annotations[ISSUER] == "local-ca"
        assert CLUSTER_ISSUER not in annotations
        assert ingress["spec"]["tls"][0]["secretName"] == f"{ingress['metadata']['name']}-tls"


@pytest.mark.parametrize("name", ["tls-secret", "tls-issuer", "sql-sections", "no-api-host"])
def test_the_other_variants_validate_strictly(variant, name: str) -> None:
    for obj in variant(name).objects():
        kubernetes_validate.validate(obj, kubernetes_validate.utils.latest_version(), strict=True)


def test_sections_reach_the_job_as_one_json_array(variant) -> None:
    job = job_values(variant("sql-sections"))
    assert json.loads(str(job["SITEMAP_SECTIONS"])) == SECTIONS
    assert "SITEMAP_QUERY" not in job


def test_single_query_stacks_have_no_sections(stack: Rendered) -> None:
    assert "SITEMAP_SECTIONS" not in job_values(stack)


# --- config refusals --------------------------------------------------------------------


SQL = {"sitemaps.source": "sql"}
DATABASE = {"sitemapDatabaseUrl": SECRET}

BAD = [
    (
        {"ingress.tls": "site-tls"},
        'ingress.tls: must be an object of keys and values, got "site-tls"',
    ),
    (
        {"ingress.tls": {"secretName": "a", "clusterIssuer": "b"}},
        "ingress.tls: takes one of secretName, clusterIssuer, issuer; got clusterIssuer,",
    ),
    (
        {"ingress.tls": {"secretName": "Site_TLS"}},
        "ingress.tls.secretName: must be a Kubernetes object name (lowercase letters, digits,",
    ),
    ({"ingress.tls": {"clusterIssuer": 3}}, "ingress.tls.clusterIssuer: must be a string, got 3"),
    (
        {"ingress.tls": {"acme": "x"}},
        "ingress.tls.acme: is not a known key; known keys here: clusterIssuer, issuer, secretName",
    ),
    (
        {"ingress.tls": {"issuer": "ca"}, "api.host": None},
        "ingress.tls: needs api.host, and routing.kind=ingress (not a Gateway's TLS)",
    ),
    (
        {
            "ingress.tls": {"issuer": "ca"},
            "sitemaps.baseUrl": "http://sitemaps.kube-image-processing.test/sitemaps",
        },
        "sitemaps.baseUrl: must be https where the routes terminate TLS",
    ),
    (
        {"ingress.tls": {"issuer": "ca"}, "sitemaps.siteUrl": "http://images.example.com"},
        "sitemaps.siteUrl: must be https where the routes terminate TLS",
    ),
    (
        {"api.host": None},
        "sitemaps.source: bucket needs api.host or sitemaps.siteUrl, or enabled=false",
    ),
    ({"sitemaps.sections": SECTIONS}, "sitemaps.sections: needs sitemaps.source=sql"),
    (
        {**SQL, "sitemaps.query": "SELECT 1", "sitemaps.sections": SECTIONS},
        "sitemaps.source: sql takes sitemaps.query or sitemaps.sections (one of them)",
    ),
    ({**SQL, "sitemaps.sections": "products"}, 'sitemaps.sections: must be a list, got "products"'),
    (
        {**SQL, "sitemaps.sections": ["products"]},
        'sitemaps.sections[0]: must be an object of keys and values, got "products"',
    ),
    (
        {**SQL, "sitemaps.sections": [{"name": "a"}]},
        "sitemaps.sections[0].query: is required but not set",
    ),
    (
        {**SQL, "sitemaps.sections": [{"name": "a", "query": "q", "limit": 5}]},
        "sitemaps.sections[0].limit: is not a known key; known keys here: name, query",
    ),
    (
        {**SQL, "sitemaps.sections": [{"name": "a", "query": "q"}, {"name": "a", "query": "r"}]},
        "sitemaps.sections: names must differ, got a, a",
    ),
]


@pytest.mark.parametrize(("changes", "message"), BAD)
def test_wrong_values_stop_with_one_line(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(changes, DATABASE)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["Products", "blog_posts", "a" * 41, "posts/2024", "é"])
def test_section_names_fit_file_names(name: str) -> None:
    with pytest.raises(
        ConfigError, match=r"sitemaps\.sections\[0\]\.name: must be 1-40 characters"
    ):
        parse({**SQL, "sitemaps.sections": [{"name": name, "query": "q"}]}, DATABASE)


@pytest.mark.parametrize("name", ["a", "blog-posts", "2024", "x" * 40])
def test_section_names_accepted(name: str) -> None:
    config = parse({**SQL, "sitemaps.sections": [{"name": name, "query": "q"}]}, DATABASE)
    assert [section.name for section in config.sitemaps.sections] == [name]


def test_tls_turns_the_default_urls_https() -> None:
    config = parse({"ingress.tls": {"clusterIssuer": "letsencrypt"}})
    assert config.scheme == "https"
    assert config.sitemaps.base_url == "https://sitemaps.kube-image-processing.test/sitemaps"
    assert config.sitemaps.site_url == "https://images.kube-image-processing.test"
    assert config.sitemaps.index_url.startswith("https://")
