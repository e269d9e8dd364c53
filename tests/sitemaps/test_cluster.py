"""Opt-in: the Ingress calls against a real cluster, only where KUBECONFIG is set."""

from __future__ import annotations

import os

import pytest

from service.sitemaps.ingress import IngressSwitch, api_client

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        not os.environ.get("KUBECONFIG"), reason="needs KUBECONFIG pointing at a real cluster"
    ),
]


def test_read_and_conditional_switch_against_a_real_cluster():
    """Reads the sitemaps Ingress (SITEMAP_INGRESS in SITEMAP_NAMESPACE) and re-applies its own
    live bucket: a no-op patch that must succeed once and then be refused as stale (409)."""
    from service.sitemaps.ingress import ConflictError

    switch = IngressSwitch(
        api_client(),
        os.environ.get("SITEMAP_INGRESS", "sitemaps"),
        os.environ.get("SITEMAP_NAMESPACE", "default"),
    )
    state = switch.read()
    assert state.live
    after = switch.switch(state.live, state.resource_version)
    if after.resource_version != state.resource_version:
        with pytest.raises(ConflictError):
            switch.switch(state.live, state.resource_version)
