"""The HTTPRoute switch through the real Kubernetes client (lightkube) against the stand-in of
tests/sitemaps/gateway_api.py: an API server and a Gateway controller, not real ones."""

from __future__ import annotations

import pytest
from lightkube import ApiError
from lightkube.types import PatchType

from service.sitemaps.errors import SitemapError
from service.sitemaps.httproute import HTTPRoute, accepted
from service.sitemaps.ingress import LIVE_LABEL, ConflictError
from tests.sitemaps.gateway_api import PARENT, PLACEHOLDER, live_label

A = "sitemaps-20261129t101500z-000000-aa"
B = "sitemaps-20261129t101501z-000000-bb"
PREFIX = "/spec/rules/0/filters/0/urlRewrite/path/replacePrefixMatch"


def test_before_the_first_publication_nothing_is_live(route):
    state = route.switch().read()
    assert (state.live, state.prefix, state.resource_version) == (None, PLACEHOLDER, "1")


def test_the_switch_is_one_json_patch_that_tests_what_was_read(route):
    switch = route.switch()
    state = switch.read()
    after = switch.switch(A, state.resource_version)
    assert route.patches == [
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
            {"op": "test", "path": PREFIX, "value": PLACEHOLDER},
            {"op": "replace", "path": PREFIX, "value": f"/{A}"},
            {
                "op": "add",
                "path": "/metadata/labels/kube-image-processing~1live-bucket",
                "value": A,
            },
        ]
    ]
    assert (route.live, route.prefix, live_label(route.route())) == (A, f"/{A}", A)
    assert route.route()["metadata"]["labels"]["app.kubernetes.io/name"] == "sitemaps"
    assert (after.live, after.resource_version, after.generation) == (A, "2", 2)
    assert {verb for verb, _ in route.requests} == {"get", "patch"}


def test_a_route_without_labels_gets_the_labels_object(route):
    route.edit(lambda document: document["metadata"].pop("labels"))
    switch = route.switch()
    switch.switch(A, switch.read().resource_version)
    assert route.patches[0][-1] == {
        "op": "add",
        "path": "/metadata/labels",
        "value": {LIVE_LABEL: A},
    }
    assert route.route()["metadata"]["labels"] == {LIVE_LABEL: A}


def test_a_change_between_read_and_patch_fails_the_test_and_changes_nothing(route):
    """Another writer switched the route after the job read it: the patch's tests fail (422)."""
    switch = route.switch()
    state = switch.read()
    route.before_patch = lambda fake: fake.edit(lambda document: set_prefix(document, f"/{B}"))
    with pytest.raises(ConflictError):
        switch.switch(A, state.resource_version)
    assert (route.live, live_label(route.route())) == (B, None)
    assert route.resource_version == 2  # the other writer's change only


def test_a_stale_resource_version_alone_fails_the_patch(route):
    """A label changed: the rewrite is as read, but the resourceVersion test refuses the patch."""
    switch = route.switch()
    state = switch.read()
    route.before_patch = lambda fake: fake.edit(
        lambda document: document["metadata"]["labels"].update(team="web")
    )
    with pytest.raises(ConflictError):
        switch.switch(A, state.resource_version)
    assert (route.prefix, route.generation) == (PLACEHOLDER, 1)
    again = switch.read()
    switch.switch(A, again.resource_version)
    assert route.live == A


def test_a_refusal_that_is_no_change_of_the_route_is_reported_not_retried(route):
    """A 422 while the route is still at the version read is a validation refusal."""
    route.invalid = "spec.rules[0].filters[0].urlRewrite.path.replacePrefixMatch: Too long"
    switch = route.switch()
    with pytest.raises(SitemapError) as caught:
        switch.switch(A, switch.read().resource_version)
    assert str(caught.value) == (
        "cannot patch gateway.networking.k8s.io httproutes 'sitemaps' in namespace 'web': "
        'HTTP 422 HTTPRoute.gateway.networking.k8s.io "sitemaps" is invalid: '
        "spec.rules[0].filters[0].urlRewrite.path.replacePrefixMatch: Too long"
    )
    assert len(route.patches) == 1
    assert route.prefix == PLACEHOLDER


def test_the_stand_in_refuses_a_failed_test_as_the_api_server_does(route):
    """kube-apiserver answers a JSON Patch that does not apply with 422 Invalid, applying nothing."""
    switch = route.switch()
    operations = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "replace", "path": PREFIX, "value": f"/{A}"},
        {"op": "test", "path": PREFIX, "value": PLACEHOLDER},
    ]
    with pytest.raises(ApiError) as caught:
        switch.api.patch(
            HTTPRoute, route.name, operations, namespace=route.namespace, patch_type=PatchType.JSON
        )
    assert (caught.value.status.code, caught.value.status.reason) == (422, "Invalid")
    assert (route.prefix, route.resource_version) == (PLACEHOLDER, 1)


def test_the_stand_in_answers_409_for_a_patch_that_sets_another_resource_version(route):
    switch = route.switch()
    operations = [{"op": "replace", "path": "/metadata/resourceVersion", "value": "7"}]
    with pytest.raises(ApiError) as caught:
        switch.api.patch(
            HTTPRoute, route.name, operations, namespace=route.namespace, patch_type=PatchType.JSON
        )
    assert caught.value.status.code == 409


def test_labels_do_not_change_the_generation_and_status_cannot_be_patched(route):
    route.edit(lambda document: document["metadata"]["labels"].update(team="web"))
    route.edit(lambda document: document.update(status={"parents": []}))
    assert (route.generation, route.resource_version) == (1, 2)
    assert route.route()["status"]["parents"]


def test_a_slow_gateway_is_waited_for(route):
    route.delay_reads = 3
    switch = route.switch(accept_timeout=30)
    switch.switch(A, switch.read().resource_version)
    assert route.pending_reads == 0
    assert accepted(route.route(), 2, route.namespace) is True


def test_a_gateway_that_never_accepts_times_out_in_one_line(route):
    route.controller = "silent"
    switch = route.switch(accept_timeout=0.5)
    with pytest.raises(SitemapError) as caught:
        switch.switch(A, switch.read().resource_version)
    assert str(caught.value) == (
        "httproute 'sitemaps' in namespace 'web' was not Accepted at generation 2 within 0.5 s "
        "(Accepted=True at generation 1: Accepted); it rewrites to "
        f"/{A} now (was {PLACEHOLDER}), which its Gateway may not serve yet; nothing was deleted"
    )


def test_a_refusing_gateway_is_named_with_its_reason(route):
    route.controller = "refuse"
    switch = route.switch()
    with pytest.raises(SitemapError) as caught:
        switch.switch(A, switch.read().resource_version)
    message = str(caught.value)
    assert message.startswith(
        "httproute 'sitemaps' in namespace 'web' was refused by its Gateway: Accepted=False "
        "NotAllowedByListeners: No listener of Gateway infra/shared-gateway allows this route;"
    )
    assert "\n" not in message


def test_acceptance_counts_only_the_routes_own_parents_at_its_generation():
    spec = {"parentRefs": [PARENT]}

    def parent(name, status, generation):
        condition = {"type": "Accepted", "status": status, "observedGeneration": generation}
        return {"parentRef": {"name": name, "namespace": "infra"}, "conditions": [condition]}

    def verdict(*parents):
        return accepted({"spec": spec, "status": {"parents": list(parents)}}, 2, "web")

    assert verdict() is None
    assert verdict(parent("shared-gateway", "True", 1)) is None
    assert verdict(parent("other", "True", 2)) is None
    assert verdict(parent("shared-gateway", "True", 2)) is True
    assert verdict(parent("shared-gateway", "False", 2)) == "Accepted=False no reason"
    assert verdict(parent("shared-gateway", "True", 2), parent("other", "False", 2)) is True


def test_missing_route_is_one_clear_line(route):
    route.exists = False
    with pytest.raises(SitemapError, match=r"^httproute 'sitemaps' not found in namespace 'web'$"):
        route.switch().read()


@pytest.mark.parametrize("verb", ["get", "patch"])
def test_forbidden_names_the_missing_verb_and_resource(route, verb):
    route.forbidden = {verb}
    switch = route.switch()
    with pytest.raises(SitemapError) as caught:
        switch.switch(A, switch.read().resource_version)
    message = str(caught.value)
    assert message.startswith(
        f"forbidden: cannot {verb} gateway.networking.k8s.io httproutes 'sitemaps' in namespace 'web'"
    )
    assert "\n" not in message
    assert route.prefix == PLACEHOLDER


def test_a_route_of_another_shape_is_refused_before_any_patch(route):
    route.edit(lambda document: document["spec"]["rules"][0].pop("filters"))
    with pytest.raises(SitemapError, match="is not the sitemaps route: it needs exactly one rule"):
        route.switch().read()
    assert route.patches == []


def set_prefix(document: dict, prefix: str) -> None:
    document["spec"]["rules"][0]["filters"][0]["urlRewrite"]["path"]["replacePrefixMatch"] = prefix
