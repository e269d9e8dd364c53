"""NetworkPolicies: every workload's pods are selected, and each admits only what it serves."""

from __future__ import annotations

from typing import Any

from k8s_objects import WORKLOAD_KINDS
from stack_render import Rendered

PROJECT_PODS = {
    "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "kube-image-processing"}}
}
INGRESS_CONTROLLER = {
    "namespaceSelector": {},
    "podSelector": {
        "matchLabels": {
            "app.kubernetes.io/name": "ingress-nginx",
            "app.kubernetes.io/component": "controller",
        }
    },
}


def template_labels(obj: dict[str, Any]) -> dict[str, str]:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    return obj["spec"]["template"]["metadata"]["labels"]


def selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    wanted = policy["spec"]["podSelector"]["matchLabels"]
    return all(labels.get(key) == value for key, value in wanted.items())


def test_every_workload_is_selected_by_exactly_one_policy(stack: Rendered) -> None:
    policies = stack.of_kind("NetworkPolicy")
    for obj in stack.objects():
        if obj["kind"] in WORKLOAD_KINDS:
            matching = [p for p in policies if selects(p, template_labels(obj))]
            assert len(matching) == 1, (obj["kind"], [p["metadata"]["name"] for p in matching])
            assert matching[0]["metadata"]["namespace"] == obj["metadata"]["namespace"]
    for policy in policies:
        # Ingress only: the API downloads from anywhere and the job calls the Kubernetes API.
        assert policy["spec"]["policyTypes"] == ["Ingress"]


def test_minio_admits_only_the_project_and_the_ingress_controller(stack: Rendered) -> None:
    policy = stack.one("NetworkPolicy", "minio")
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 9000}]
    assert rule["from"] == [PROJECT_PODS, INGRESS_CONTROLLER]


def test_minio_peers_the_api_and_the_job_are_project_pods(stack: Rendered) -> None:
    for obj in stack.objects():
        if obj["kind"] in WORKLOAD_KINDS:
            labels = template_labels(obj)
            assert labels["app.kubernetes.io/part-of"] == "kube-image-processing", obj["kind"]


def test_the_api_admits_anyone_on_its_serving_port_only(stack: Rendered) -> None:
    policy = stack.one("NetworkPolicy", "image-api")
    assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}]}]
    container = stack.one("Deployment", "image-api")["spec"]["template"]["spec"]["containers"][0]
    assert [port["containerPort"] for port in container["ports"]] == [8080]


def test_nothing_connects_to_the_sitemap_job(stack: Rendered) -> None:
    policy = stack.one("NetworkPolicy", "sitemap-publisher")
    assert "ingress" not in policy["spec"]
