"""Opt-in: the HTTPRoute calls against a real cluster, only where KUBECONFIG and SITEMAP_HTTPROUTE are set."""

from __future__ import annotations

import os

import pytest

from service.sitemaps.httproute import HTTPRouteSwitch
from service.sitemaps.ingress import ConflictError, api_client

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        not (os.environ.get("KUBECONFIG") and os.environ.get("SITEMAP_HTTPROUTE")),
        reason="needs KUBECONFIG pointing at a real cluster and SITEMAP_HTTPROUTE naming a route",
    ),
]


def test_conditional_switch_and_acceptance_against_a_real_cluster():
    """Re-applies the route's own live bucket (a no-op for its spec): the patch must be accepted
    by the API server and the Gateway, and a second patch at the old resourceVersion, if the
    first changed it, must be refused as a change since the read."""
    switch = HTTPRouteSwitch(
        api_client(),
        os.environ["SITEMAP_HTTPROUTE"],
        os.environ.get("SITEMAP_NAMESPACE", "default"),
    )
    state = switch.read()
    if state.live is None:
        pytest.skip("nothing is published to this route yet")
    after = switch.switch(state.live, state.resource_version)
    if after.resource_version != state.resource_version:
        switch.last = state
        with pytest.raises(ConflictError):
            switch.switch(state.live, state.resource_version)
