"""The API's pods scale, spread, stop and survive node drains as the `api` stack keys say.

Rendered under Pulumi's mocks and validated against the Kubernetes schemas elsewhere
(test_schema); here, what each object says, and that the pieces fit: the stop a pod is given
covers its drain and the longest request its own server allows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from k8s_objects import kubelet_env, pod_spec
from stack_render import ROOT, Rendered

from infra.config import ConfigError
from service.settings import (
    STOP_MARGIN_SECONDS,
    ApiSettings,
    FetchSettings,
    ServingSettings,
    longest_request_seconds,
)
from tests.infra.test_config import parse


def api_pod(run: Rendered) -> dict[str, Any]:
    return pod_spec(run.one("Deployment", "image-api"))


def api_budgets(run: Rendered) -> list[dict[str, Any]]:
    return [
        budget
        for budget in run.of_kind("PodDisruptionBudget")
        if budget["metadata"]["labels"]["app.kubernetes.io/name"] == "image-api"
    ]


def test_dev_runs_a_fixed_count_spread_softly(dev: Rendered) -> None:
    assert dev.one("Deployment", "image-api")["spec"]["replicas"] == 2
    assert dev.of_kind("HorizontalPodAutoscaler") == []
    assert dev.record("Deployment", "image-api")["ignoreChanges"] == []
    rules = {c["topologyKey"]: c for c in api_pod(dev)["topologySpreadConstraints"]}
    assert rules["kubernetes.io/hostname"]["whenUnsatisfiable"] == "ScheduleAnyway"
    assert rules["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "ScheduleAnyway"
    for rule in rules.values():
        assert rule["maxSkew"] == 1
        assert rule["labelSelector"]["matchLabels"]["app.kubernetes.io/name"] == "image-api"
        assert rule["matchLabelKeys"] == ["pod-template-hash"]


def test_prod_scales_on_cpu_and_leaves_the_count_to_the_autoscaler(prod: Rendered) -> None:
    (scaler,) = prod.of_kind("HorizontalPodAutoscaler")
    assert scaler["apiVersion"] == "autoscaling/v2"
    spec = scaler["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "image-api",
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (4, 12)
    (metric,) = spec["metrics"]
    assert metric["resource"] == {
        "name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": 80},
    }
    down = spec["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] == 300
    assert down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 60}]
    assert prod.one("Deployment", "image-api")["spec"]["replicas"] == 4
    assert prod.record("Deployment", "image-api")["ignoreChanges"] == ["spec.replicas"]
    rules = {c["topologyKey"]: c for c in api_pod(prod)["topologySpreadConstraints"]}
    assert rules["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
    assert rules["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "ScheduleAnyway"


def test_a_second_up_keeps_the_count_the_autoscaler_set(variant) -> None:
    """The engine keeps an ignored field's live value; the program never sends its own."""
    run: Rendered = variant("prod-second-up")
    record = run.record("Deployment", "image-api")
    assert record["ignoreChanges"] == ["spec.replicas"]
    assert record["outputs"]["spec"]["replicas"] == 9


def test_autoscaling_on_dev_starts_from_its_floor(variant) -> None:
    run: Rendered = variant("api-autoscaled")
    (scaler,) = run.of_kind("HorizontalPodAutoscaler")
    assert (scaler["spec"]["minReplicas"], scaler["spec"]["maxReplicas"]) == (1, 3)
    assert run.one("Deployment", "image-api")["spec"]["replicas"] == 1
    # It can run 3: a budget, though it starts with 1.
    (budget,) = api_budgets(run)
    assert budget["spec"]["maxUnavailable"] == 1
    assert api_pod(run)["containers"][0]["lifecycle"]["preStop"] == {"sleep": {"seconds": 12}}


def test_a_disruption_budget_wherever_two_pods_may_run(dev: Rendered, variant) -> None:
    (budget,) = api_budgets(dev)
    # maxUnavailable rather than minAvailable: one pod may always go, so a drain never blocks.
    assert budget["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in budget["spec"]
    assert budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "image-api"
    assert api_budgets(variant("api-one-replica")) == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"api.autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 3}},
            "api.autoscaling.maxReplicas: must not be below minReplicas (5)",
        ),
        (
            {"api.autoscaling": {"minReplicas": 0}},
            "api.autoscaling.minReplicas: must be an integer from 1 to 2147483647, got 0",
        ),
        (
            {"api.autoscaling": {"cpuPercent": 101}},
            "api.autoscaling.cpuPercent: must be an integer from 1 to 100, got 101",
        ),
        (
            {"api.autoscaling": {"cpuPercent": 0}},
            "api.autoscaling.cpuPercent: must be an integer from 1 to 100, got 0",
        ),
        (
            {"api.autoscaling": {"enabled": True}},
            "api.replicas: is not read with api.autoscaling.enabled: the autoscaler sets it",
        ),
        ({"api.drainSeconds": 0}, "api.drainSeconds: must be an integer from 1 to 120, got 0"),
        ({"api.spread": "always"}, 'api.spread: must be one of soft, hard, got "always"'),
        (
            {"api.autoscaling": {"scaleDownWindowSeconds": 4000}},
            "api.autoscaling.scaleDownWindowSeconds: must be an integer from 0 to 3600, got 4000",
        ),
    ],
)
def test_wrong_scaling_values_are_one_line(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(changes)
    assert str(raised.value) == message


def _server_graceful_timeout(environment: dict[str, str], tmp_path: Path) -> int:
    """gunicorn's graceful stop, as the server's own config computes it from the pod's env."""
    probe = "import json, service.gunicorn_conf as c; print(json.dumps(c.graceful_timeout))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**environment, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("name", ["dev", "prod", "gateway", "api-autoscaled"])
def test_a_stopping_pod_lets_its_longest_request_finish(name: str, variant, tmp_path: Path) -> None:
    """The pod spec and the server's settings read together: after the drain, the server's
    graceful stop covers the longest request it allows, and Kubernetes waits for all of it."""
    run: Rendered = variant(name)
    obj = run.one("Deployment", "image-api")
    pod = pod_spec(obj)
    (container,) = pod["containers"]
    environment = kubelet_env(container, obj["metadata"]["namespace"], lambda n, k: f"{n}-{k}")
    longest = longest_request_seconds(
        FetchSettings.from_env(environment),
        ApiSettings.from_env(environment),
        ServingSettings.from_env(environment),
    )
    graceful = _server_graceful_timeout(environment, tmp_path)
    drain = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert graceful >= longest
    assert pod["terminationGracePeriodSeconds"] >= drain + graceful + STOP_MARGIN_SECONDS
