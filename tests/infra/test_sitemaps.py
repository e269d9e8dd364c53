"""SitemapPublisher: the Ingress the job switches, its narrow RBAC and the CronJob."""

from __future__ import annotations

import re

from k8s_objects import containers, env, pod_spec
from stack_render import Rendered

from infra.sitemaps import JOB_COMMAND

REWRITE = "nginx.ingress.kubernetes.io/rewrite-target"
LIVE_LABEL = "kube-image-processing/live-bucket"
REGEX_CHARS = re.compile(r"[()|$*+?\[\]^\\]")


def ingress(stack: Rendered) -> dict:
    return stack.one("Ingress", "sitemaps")


def cronjob(stack: Rendered) -> dict:
    return stack.one("CronJob", "sitemap-publisher")


def job_container(stack: Rendered) -> dict:
    return containers(cronjob(stack))[0]


def test_ingress_serves_minio_and_leaves_the_switched_fields_to_the_job(stack: Rendered) -> None:
    """Declaring them would make Pulumi's field manager fight the job's value on every update."""
    obj = ingress(stack)
    annotations = obj["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/use-regex"] == "true"
    assert REWRITE not in annotations
    assert LIVE_LABEL not in obj["metadata"]["labels"]
    assert obj["spec"]["ingressClassName"] == "nginx"
    (rule,) = obj["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/sitemaps(/|$)(.*)"
    assert path["pathType"] == "ImplementationSpecific"
    assert path["backend"]["service"] == {"name": "minio", "port": {"number": 9000}}


def test_ignore_changes_covers_exactly_the_switched_fields(stack: Rendered) -> None:
    record = stack.record("Ingress", "sitemaps")
    assert sorted(record["ignoreChanges"]) == sorted(
        [f'metadata.annotations["{REWRITE}"]', f'metadata.labels["{LIVE_LABEL}"]']
    )
    for other in stack.kubernetes():
        if other is not record:
            # The MinIO topology record keeps its first data on purpose (test_minio_topology).
            expected = ["data"] if other["name"] == "minio-topology" else []
            assert other["ignoreChanges"] == expected, other["name"]


def test_regex_cannot_leak_into_the_api_paths(stack: Rendered) -> None:
    api = stack.one("Ingress", "image-api")
    sitemaps = ingress(stack)
    api_hosts = {rule.get("host") for rule in api["spec"]["rules"]}
    sitemap_hosts = {rule.get("host") for rule in sitemaps["spec"]["rules"]}
    assert None not in sitemap_hosts
    assert not api_hosts & sitemap_hosts
    for rule in api["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["pathType"] == "Prefix"
            assert not REGEX_CHARS.search(path["path"]), path["path"]
    api_annotations = api["metadata"]["annotations"]
    assert "nginx.ingress.kubernetes.io/use-regex" not in api_annotations
    assert REWRITE not in api_annotations


def test_role_allows_only_get_and_patch_on_that_ingress(stack: Rendered) -> None:
    role = stack.one("Role", "sitemap-publisher")
    assert role["rules"] == [
        {
            "apiGroups": ["networking.k8s.io"],
            "resources": ["ingresses"],
            "resourceNames": ["sitemaps"],
            "verbs": ["get", "patch"],
        }
    ]


def test_role_binding_binds_the_job_account(stack: Rendered) -> None:
    binding = stack.one("RoleBinding", "sitemap-publisher")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "sitemap-publisher",
    }
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": "sitemap-publisher",
            "namespace": "kube-image-processing",
        }
    ]
    account = stack.one("ServiceAccount", "sitemap-publisher")
    assert pod_spec(cronjob(stack))["serviceAccountName"] == account["metadata"]["name"]


def test_cronjob_schedule_and_limits(dev: Rendered, prod: Rendered, dev_sql: Rendered) -> None:
    assert cronjob(dev)["spec"]["schedule"] == "0 * * * *"
    assert cronjob(prod)["spec"]["schedule"] == "30 2 * * *"
    assert cronjob(dev_sql)["spec"]["schedule"] == "15 4 * * 1-5"
    for stack in (dev, prod, dev_sql):
        spec = cronjob(stack)["spec"]
        assert spec["concurrencyPolicy"] == "Forbid"
        job = spec["jobTemplate"]["spec"]
        assert job["backoffLimit"] >= 0
        assert job["activeDeadlineSeconds"] > 0
        assert pod_spec(cronjob(stack))["restartPolicy"] == "Never"


def test_job_runs_the_api_image_with_the_publish_command(stack: Rendered) -> None:
    container = job_container(stack)
    api = containers(stack.one("Deployment", "image-api"))[0]
    assert container["image"] == api["image"]
    assert container["imagePullPolicy"] == api["imagePullPolicy"]
    assert container["command"] == JOB_COMMAND == ["python", "-m", "service.sitemaps", "publish"]


def test_job_env(dev: Rendered, prod: Rendered) -> None:
    variables = env(job_container(dev))
    values = {name: entry.get("value") for name, entry in variables.items()}
    assert values["SITEMAP_BASE_URL"] == "http://sitemaps.kube-image-processing.test/sitemaps"
    assert values["SITEMAP_SOURCE"] == "bucket"
    assert values["SITEMAP_INGRESS"] == "sitemaps"
    assert values["SITEMAP_RETAIN"] == "1"
    assert values["PROCESSED_BUCKET"] == "processed"
    assert values["MINIO_ENDPOINT"] == "minio.kube-image-processing.svc.cluster.local:9000"
    assert variables["SITEMAP_NAMESPACE"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }
    for name in ("MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"):
        assert "secretKeyRef" in variables[name]["valueFrom"]
    assert "SITEMAP_DATABASE_URL" not in variables
    assert values["SITEMAP_SITE_URL"] == "http://images.kube-image-processing.test"
    prod_values = {name: entry.get("value") for name, entry in env(job_container(prod)).items()}
    assert prod_values["SITEMAP_BASE_URL"] == "https://sitemaps.example.com/sitemaps"
    assert prod_values["SITEMAP_SITE_URL"] == "https://images.example.com"


def test_base_url_is_where_the_ingress_serves(stack: Rendered) -> None:
    base_url = env(job_container(stack))["SITEMAP_BASE_URL"]["value"]
    host = ingress(stack)["spec"]["rules"][0]["host"]
    assert base_url.endswith("/sitemaps")
    assert stack.outputs["sitemaps_url"]["value"] == f"{base_url}/sitemap.xml"
    if base_url.startswith("http://"):
        assert base_url == f"http://{host}/sitemaps"


def test_sql_source_reads_the_url_from_a_secret(dev_sql: Rendered) -> None:
    variables = env(job_container(dev_sql))
    assert variables["SITEMAP_SOURCE"]["value"] == "sql"
    assert variables["SITEMAP_QUERY"]["value"] == "SELECT loc, lastmod FROM items"
    ref = variables["SITEMAP_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    secret = dev_sql.one("Secret", ref["name"])
    assert ref["key"] in secret["stringData"]
    assert secret["stringData"][ref["key"]].startswith("postgresql://")


def test_job_security_baseline(stack: Rendered) -> None:
    container = job_container(stack)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    volumes = {v["name"]: v for v in pod_spec(cronjob(stack))["volumes"]}
    assert volumes["tmp"]["emptyDir"]["sizeLimit"]
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}


def test_sitemaps_can_be_disabled(variant) -> None:
    result = variant("sitemaps-off")
    assert not result.of_kind("CronJob")
    assert [i["metadata"]["name"] for i in result.of_kind("Ingress")] == ["image-api"]
    assert not result.of_type("kube-image-processing:index:SitemapPublisher")
