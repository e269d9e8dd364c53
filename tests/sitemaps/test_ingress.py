"""The Ingress switch through the real Kubernetes client (lightkube) against a local API stand-in."""

from __future__ import annotations

import pytest

from service.sitemaps.errors import SitemapError
from service.sitemaps.ingress import ConflictError


def test_read_and_switch_carry_the_resource_version(kube):
    switch = kube.switch()
    state = switch.read()
    assert (state.live, state.resource_version) == (None, "1")
    after = switch.switch("sitemaps-20261122t101500z-000000-ab", state.resource_version)
    assert after.resource_version == "2"
    assert kube.live == "sitemaps-20261122t101500z-000000-ab"
    assert {verb for verb, _ in kube.requests} == {"get", "patch"}


def test_stale_resource_version_is_a_conflict(kube):
    switch = kube.switch()
    state = switch.read()
    switch.switch("sitemaps-20261122t101500z-000000-aa", state.resource_version)
    with pytest.raises(ConflictError):
        switch.switch("sitemaps-20261122t101501z-000000-bb", state.resource_version)
    assert kube.live == "sitemaps-20261122t101500z-000000-aa"


def test_missing_ingress_is_one_clear_line(kube):
    kube.exists = False
    with pytest.raises(SitemapError, match=r"^ingress 'sitemaps' not found in namespace 'web'$"):
        kube.switch().read()


@pytest.mark.parametrize("verb", ["get", "patch"])
def test_forbidden_names_the_missing_verb_and_resource(kube, verb):
    kube.forbidden = {verb}
    switch = kube.switch()
    with pytest.raises(SitemapError) as caught:
        switch.switch("sitemaps-20261122t101500z-000000-ab", switch.read().resource_version)
    message = str(caught.value)
    assert message.startswith(
        f"forbidden: cannot {verb} networking.k8s.io ingresses 'sitemaps' in namespace 'web'"
    )
    assert "\n" not in message


def test_unreachable_api_server(kube):
    from lightkube import KubeConfig

    from service.sitemaps.ingress import IngressSwitch
    from tests.servers import free_port

    host = f"http://127.0.0.1:{free_port()}"
    config = KubeConfig.from_server(host).get()
    assert config is not None
    switch = IngressSwitch.from_config(config, "sitemaps", "web")
    with pytest.raises(SitemapError, match=f"^Kubernetes API unreachable at {host}: "):
        switch.read()


def test_refused_credentials_are_one_clear_line(kube):
    """The stand-in accepts one bearer token; a context with another, or with no user, gets 401."""
    from lightkube import KubeConfig
    from lightkube.config.models import Cluster, User

    from service.sitemaps.ingress import IngressSwitch

    for user in (User(token="stolen"), None):
        config = KubeConfig.from_one(cluster=Cluster(server=kube.host), user=user).get()
        assert config is not None
        switch = IngressSwitch.from_config(config, "sitemaps", "web")
        with pytest.raises(SitemapError) as caught:
            switch.read()
        assert str(caught.value) == (
            f"unauthorized: the Kubernetes API at {kube.host} refused the credentials"
        )
    assert kube.resource_version == 1


def test_a_patch_that_is_not_a_merge_patch_is_refused(kube):
    """The stand-in keeps the API server's 415 for other patch types, so the switch's
    JSON merge patch is what reaches it."""
    import json
    import urllib.request

    from tests.sitemaps.conftest import TOKEN

    request = urllib.request.Request(
        f"{kube.host}/apis/networking.k8s.io/v1/namespaces/web/ingresses/sitemaps",
        data=json.dumps([{"op": "replace", "path": "/metadata/labels", "value": {}}]).encode(),
        method="PATCH",
        headers={"Content-Type": "application/json-patch+json", "Authorization": f"Bearer {TOKEN}"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 415


def test_in_cluster_config_comes_from_the_service_account(tmp_path, monkeypatch):
    """Inside a pod: the API server from KUBERNETES_SERVICE_HOST/PORT over TLS with the
    account's CA, its token, and the pod's namespace as the default (no connection made)."""
    from service.sitemaps import ingress

    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("pod-token")
    (account / "namespace").write_text("shop")
    (account / "ca.crt").write_text("not read until a connection is made")
    monkeypatch.setattr(ingress, "SERVICE_ACCOUNT", account)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "ignored-inside-a-pod"))
    config = ingress.kube_config()
    assert config.cluster.server == "https://10.96.0.1:443"
    assert config.cluster.certificate_auth == str(account / "ca.crt")
    assert config.user is not None
    assert config.user.token == "pod-token"
    assert config.namespace == "shop"
    (account / "token").unlink()
    with pytest.raises(SitemapError, match=r"^no Kubernetes configuration: "):
        ingress.kube_config()


def test_a_kubeconfig_without_a_current_context_is_one_line(tmp_path, monkeypatch):
    from service.sitemaps import ingress

    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(path))
    with pytest.raises(SitemapError, match=r"^no Kubernetes configuration: "):
        ingress.kube_config()
    path.write_text(": not yaml [")
    with pytest.raises(SitemapError, match=r"^no Kubernetes configuration: "):
        ingress.kube_config()
