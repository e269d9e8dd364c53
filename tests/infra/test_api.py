"""ImageApi: Deployment, NodePort Service and Ingress."""

from __future__ import annotations

from k8s_objects import containers, env, pod_spec
from stack_render import Rendered

from service.settings import FetchSettings

CREDENTIAL_VARS = ("MINIO_ACCESS_KEY", "MINIO_SECRET_KEY")


def deployment(stack: Rendered) -> dict:
    return stack.one("Deployment", "image-api")


def api_container(stack: Rendered) -> dict:
    return containers(deployment(stack))[0]


def test_replicas_from_config(dev: Rendered, prod: Rendered) -> None:
    assert deployment(dev)["spec"]["replicas"] == 2
    assert deployment(prod)["spec"]["replicas"] == 4


def test_storage_env_points_at_the_minio_client_service(stack: Rendered) -> None:
    variables = env(api_container(stack))
    assert variables["MINIO_ENDPOINT"]["value"] == (
        "minio.kube-image-processing.svc.cluster.local:9000"
    )
    assert variables["MINIO_SECURE"]["value"] == "false"
    minio_secret = env(containers(stack.one("StatefulSet", "minio"))[0])["MINIO_ROOT_USER"]
    secret_name = minio_secret["valueFrom"]["secretKeyRef"]["name"]
    for name, key in zip(CREDENTIAL_VARS, ("rootUser", "rootPassword"), strict=True):
        assert variables[name]["valueFrom"]["secretKeyRef"] == {"name": secret_name, "key": key}
        assert "value" not in variables[name]


def test_service_settings_env(dev: Rendered) -> None:
    variables = {k: v.get("value") for k, v in env(api_container(dev)).items()}
    assert variables["INCOMING_BUCKET"] == "incoming"
    assert variables["PROCESSED_BUCKET"] == "processed"
    assert variables["FETCH_TIMEOUT_SECONDS"] == "10"
    assert int(variables["MAX_DOWNLOAD_BYTES"]) > 0
    assert int(variables["MAX_IMAGE_PIXELS"]) > 0
    assert variables["WEB_CONCURRENCY"] == "2"
    assert variables["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/metrics"
    assert "FETCH_ALLOW_PRIVATE_NETWORKS" not in variables


def test_memory_limit_reaches_the_api_from_the_container_spec(stack: Rendered) -> None:
    container = api_container(stack)
    source = env(container)["MEMORY_LIMIT_BYTES"]["valueFrom"]["resourceFieldRef"]
    assert source == {
        "containerName": container["name"],
        "resource": "limits.memory",
        "divisor": "1",
    }
    assert container["resources"]["limits"]["memory"]


def test_never_allows_private_networks(stack: Rendered) -> None:
    for obj in stack.objects():
        if obj["kind"] in ("Deployment", "CronJob"):
            for container in containers(obj):
                assert "FETCH_ALLOW_PRIVATE_NETWORKS" not in env(container)


def test_probes(stack: Rendered) -> None:
    container = api_container(stack)
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]


def test_read_only_root_with_tmp_empty_dir(stack: Rendered) -> None:
    container = api_container(stack)
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    volumes = {v["name"]: v for v in pod_spec(deployment(stack))["volumes"]}
    assert "emptyDir" in volumes["tmp"]
    assert "emptyDir" in volumes["metrics"]
    assert {"name": "metrics", "mountPath": "/tmp/metrics"} in container["volumeMounts"]
    assert pod_spec(deployment(stack))["securityContext"]["runAsNonRoot"] is True


def test_resources_from_config(dev: Rendered) -> None:
    assert api_container(dev)["resources"] == {
        "requests": {"cpu": "50m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }


def test_rolling_update_never_drops_capacity(stack: Rendered) -> None:
    strategy = deployment(stack)["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_node_port_service(dev: Rendered, variant) -> None:
    service = dev.one("Service", "image-api")
    assert service["spec"]["type"] == "NodePort"
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80
    assert port["targetPort"] == "http"
    assert "nodePort" not in port
    assert service["spec"]["selector"] == deployment(dev)["spec"]["selector"]["matchLabels"]
    fixed = variant("skip-await").one("Service", "image-api")
    assert fixed["spec"]["ports"][0]["nodePort"] == 30080


def test_ingress_class_host_and_backend(dev: Rendered, prod: Rendered, variant) -> None:
    dev_ingress = dev.one("Ingress", "image-api")
    assert dev_ingress["spec"]["ingressClassName"] == "nginx"
    (rule,) = dev_ingress["spec"]["rules"]
    assert rule["host"] == "images.kube-image-processing.test"
    (hostless,) = variant("no-api-host").one("Ingress", "image-api")["spec"]["rules"]
    assert "host" not in hostless
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/"
    assert path["pathType"] == "Prefix"
    assert path["backend"]["service"] == {"name": "image-api", "port": {"name": "http"}}
    (prod_rule,) = prod.one("Ingress", "image-api")["spec"]["rules"]
    assert prod_rule["host"] == "images.example.com"


def test_proxy_read_timeout_outlasts_the_fetch(stack: Rendered) -> None:
    annotations = stack.one("Ingress", "image-api")["metadata"]["annotations"]
    fetch = FetchSettings.from_env(
        {"FETCH_TIMEOUT_SECONDS": env(api_container(stack))["FETCH_TIMEOUT_SECONDS"]["value"]}
    )
    read_timeout = int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"])
    # The rule the API itself applies to a whole download, read from the API's own settings.
    assert read_timeout > fetch.download_deadline_seconds


def test_skip_await_is_a_stack_option(dev: Rendered, variant) -> None:
    for ingress in dev.of_kind("Ingress"):
        assert "pulumi.com/skipAwait" not in ingress["metadata"]["annotations"]
    for ingress in variant("skip-await").of_kind("Ingress"):
        assert ingress["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
