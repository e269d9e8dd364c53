"""A crawler's journey: images in through the API, out through the sitemaps, all through nginx.

Everything runs on loopback: the image API under a real WSGI server, moto's S3 server in place
of MinIO, an origin to download images from, the suite's Kubernetes API stand-in, and a real
nginx configured from the Ingress objects the Pulumi program renders for the stack file, the
way ingress-nginx would (see ingress_nginx.py). The sitemap job runs as the CronJob declares
it (its command and env), pointed at those stand-ins; it patches the sitemaps Ingress through
the stand-in, and nginx is reconfigured from the patched object, as the controller would be.
Then a crawler starts from the API host's robots.txt and the stack's index URL.

Stand-ins, and why:
- moto for MinIO (no MinIO binary here). MinIO serves anonymous GETs of objects its bucket
  policy makes public; moto's server does not check policies or signatures at all, so an
  anonymous GET answers either way. The test therefore also reads the policy the job set on
  the live bucket and requires the anonymous s3:GetObject grant that MinIO would act on.
  moto also reads a dotted Host as virtual-hosted style, MinIO (without MINIO_DOMAIN) as
  path style; the `path_style_s3` fixture tells moto to do as MinIO does.
- TLS certificates come from a CA the test makes, standing in for the Secret or cert-manager.
- Services are loopback ports: image-api is the WSGI server, minio is moto.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import urllib3
from crawler import LoopbackWeb, crawl, robots_sitemaps
from ingress_nginx import Certificate, Listeners, nginx_conf
from k8s_objects import kubelet_env, pod_spec
from kube_stand_in import kube_api
from nginx_server import NginxServer
from stack_render import ROOT, Rendered, render_all
from stack_variants import VARIANTS

from infra.api import DEPLOYMENT_NAME, SERVICE_NAME
from infra.api import INGRESS_NAME as API_INGRESS
from infra.common import MINIO_PASSWORD_KEY, MINIO_USER_KEY
from infra.sitemaps import INGRESS_NAME as SITEMAPS_INGRESS
from infra.sitemaps import WORKLOAD_NAME
from service.settings import StorageSettings
from service.sitemaps import storage
from tests.conftest import S3Server
from tests.servers import serving
from tests.service.api_support import OriginServer, encode, photo, serve
from tests.service.fetch_origin import SERVER_PEM, tls_context
from tests.sitemaps.conftest import TOKEN

JOURNEY_STACKS = ("dev", "prod")
IMAGES = {
    "photo.jpg": encode(photo(160, 120), "JPEG", quality=85),
    "photo.png": encode(photo(96, 64), "PNG"),
    "photo.gif": encode(photo(64, 48), "GIF"),
    "photo.webp": encode(photo(120, 90), "WEBP", quality=80),
}


serving_api = contextmanager(serve)


def resolved_env(
    obj: dict[str, Any], secrets: Mapping[str, str], stand_ins: Mapping[str, str]
) -> dict[str, str]:
    """The first container's env as the kubelet would fill it, then the loopback stand-ins."""
    (container,) = pod_spec(obj)["containers"]
    namespace = obj["metadata"]["namespace"]
    return {**kubelet_env(container, namespace, lambda _, key: secrets[key]), **stand_ins}


def read_ingress(kube_host: str, namespace: str, name: str) -> dict[str, Any]:
    """The Ingress as a controller would read it from the API server."""
    http = urllib3.PoolManager(timeout=10, retries=False)
    path = f"/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses/{name}"
    response = http.request("GET", kube_host + path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200, response.data
    return dict(response.json())


def certificates_for(
    stack: Rendered, directory: Path
) -> tuple[dict[str, Certificate], dict[str, Path]]:
    """A test-issued certificate per TLS Secret the Ingresses name; the CA of each host."""
    certificates: dict[str, Certificate] = {}
    authorities: dict[str, Path] = {}
    for ingress in stack.of_kind("Ingress"):
        for entry in ingress["spec"].get("tls", []):
            where = directory / entry["secretName"]
            where.mkdir()
            _, ca = tls_context(where, *entry["hosts"])
            certificates[entry["secretName"]] = Certificate(where / SERVER_PEM, where / SERVER_PEM)
            authorities.update(dict.fromkeys(entry["hosts"], ca))
    return certificates, authorities


def post_json(web: LoopbackWeb, url: str, body: dict[str, str]) -> dict[str, Any]:
    fetched = web.follow(
        "POST", url, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    assert fetched.status == 201, f"{url}: HTTP {fetched.status} {fetched.body[:300]!r}"
    return dict(json.loads(fetched.body))


def run_job(cronjob: dict[str, Any], env: Mapping[str, str], home: Path) -> None:
    """The CronJob's container command with its env, as a process of its own."""
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    command = list(container["command"])
    assert command[0] == "python"
    done = subprocess.run(
        [sys.executable, *command[1:]],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "HOME": str(home), "TMPDIR": str(home), **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    """The dev and prod stack files, rendered by the real program under Pulumi's mocks."""
    rendered = render_all(
        {name: VARIANTS[name] for name in JOURNEY_STACKS}, tmp_path_factory.mktemp("journeys")
    )
    for name, stack in rendered.items():
        assert stack.error is None, f"{name}: {stack.error}"
    return rendered


@pytest.fixture
def origin() -> Iterator[OriginServer]:
    with serving(OriginServer(IMAGES)) as server:
        yield server


@pytest.fixture
def nginx() -> Iterator[NginxServer]:
    server = NginxServer()
    yield server
    server.remove()


@pytest.mark.timeout(300)
@pytest.mark.usefixtures("nginx_available")
@pytest.mark.parametrize("name", JOURNEY_STACKS)
def test_every_published_url_answers_through_the_stacks_ingresses(
    name: str,
    stacks: dict[str, Rendered],
    path_style_s3: S3Server,
    origin: OriginServer,
    nginx: NginxServer,
    tmp_path: Path,
) -> None:
    stack = stacks[name]
    secrets = {
        MINIO_USER_KEY: path_style_s3.access_key,
        MINIO_PASSWORD_KEY: path_style_s3.secret_key,
    }
    storage_stand_in = {"MINIO_ENDPOINT": path_style_s3.endpoint}
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    api_env = resolved_env(
        stack.one("Deployment", DEPLOYMENT_NAME),
        secrets,
        {
            **storage_stand_in,
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
            # The origin is on loopback, which the deployed API refuses.
            "FETCH_ALLOW_PRIVATE_NETWORKS": "true",
        },
    )
    certificates, authorities = certificates_for(stack, nginx.directory)
    listeners = Listeners(nginx.http_port, nginx.https_port)
    api_ingress = stack.one("Ingress", API_INGRESS)
    hosts = {
        rule["host"] for ingress in stack.of_kind("Ingress") for rule in ingress["spec"]["rules"]
    }

    with (
        serving_api(api_env) as api,
        kube_api(stack.one("Ingress", SITEMAPS_INGRESS), tmp_path) as kube,
    ):
        upstreams = {
            SERVICE_NAME: f"127.0.0.1:{api.server.server_port}",
            stack.outputs["minio_service"]["value"]: path_style_s3.endpoint,
        }

        def configure() -> str:
            live = read_ingress(kube.fake.host, kube.fake.namespace, kube.fake.name)
            return nginx_conf(
                [api_ingress, live],
                upstreams=upstreams,
                certificates=certificates,
                listeners=listeners,
                runtime_dir=nginx.directory,
            )

        nginx.start(configure())
        web = LoopbackWeb(hosts, nginx.http_port, nginx.https_port, authorities)
        api_url = stack.outputs["api_url"]["value"]

        # A user converts a few images through the API's public URL.
        expected = set()
        for image in IMAGES:
            incoming = post_json(web, urljoin(api_url, "incoming"), {"url": origin.url(image)})
            processed = post_json(web, urljoin(api_url, "processed"), {"path": incoming["path"]})
            expected.add(urljoin(api_url, processed["path"]))

        # The CronJob runs; the controller sees the patched Ingress and reloads nginx.
        job_env = resolved_env(
            stack.one("CronJob", WORKLOAD_NAME),
            secrets,
            {**storage_stand_in, "KUBECONFIG": str(kube.kubeconfig)},
        )
        run_job(stack.one("CronJob", WORKLOAD_NAME), job_env, tmp_path)
        assert kube.fake.live, "the job did not switch the Ingress"
        nginx.restart(configure())

        # A crawler starts from the API host's robots.txt.
        api_origin = "{0.scheme}://{0.netloc}".format(urlsplit(api_url))
        index_urls = robots_sitemaps(web, api_origin)
        assert index_urls == [stack.outputs["sitemaps_url"]["value"]]
        found = crawl(web, index_urls[0])
        assert set(found.locs) == expected, "the sitemaps list exactly the converted images"
        assert len(found.locs) == len(expected), "no URL is listed twice"

        # moto ignores bucket policies; MinIO serves the files only because of this one.
        client = storage.connect(StorageSettings.from_env({**path_style_s3.env()}))
        policy = json.loads(client.get_bucket_policy(bucket_name=kube.fake.live))
        (statement,) = policy["Statement"]
        assert statement["Effect"] == "Allow"
        assert statement["Principal"] == {"AWS": ["*"]}
        assert statement["Action"] == ["s3:GetObject"]

        if authorities:
            # Plain HTTP is redirected to HTTPS on every TLS host.
            for url in (f"{api_origin}/robots.txt", index_urls[0], *found.checked[:1]):
                assert url.startswith("https://"), url
                plain = web.request("GET", "http://" + url.removeprefix("https://"))
                assert (plain.status, plain.location) == (308, url), plain
        assert "[emerg]" not in nginx.errors()
