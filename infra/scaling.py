"""How the API's pods scale, spread, stop and survive drains: its HorizontalPodAutoscaler,
PodDisruptionBudget, topology spread and drained stop, from `api` stack config."""

from __future__ import annotations

import pulumi
from pulumi_kubernetes.autoscaling.v2 import (
    CrossVersionObjectReferenceArgs,
    HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehaviorArgs,
    HorizontalPodAutoscalerSpecArgs,
    HPAScalingPolicyArgs,
    HPAScalingRulesArgs,
    MetricSpecArgs,
    MetricTargetArgs,
    ResourceMetricSourceArgs,
)
from pulumi_kubernetes.core.v1 import (
    LifecycleArgs,
    LifecycleHandlerArgs,
    SleepActionArgs,
    TopologySpreadConstraintArgs,
)
from pulumi_kubernetes.meta.v1 import LabelSelectorArgs, ObjectMetaArgs
from pulumi_kubernetes.policy.v1 import PodDisruptionBudget, PodDisruptionBudgetSpecArgs

from infra.config.api import ApiConfig
from service.settings import ApiSettings, FetchSettings, ServingSettings, termination_grace_seconds

HOSTNAME_KEY = "kubernetes.io/hostname"
ZONE_KEY = "topology.kubernetes.io/zone"
# The pods of one rollout only: the old ReplicaSet's pods do not skew the new one's spread.
TEMPLATE_HASH_KEY = "pod-template-hash"


def replicas(config: ApiConfig) -> int:
    """The Deployment's count: fixed, or the autoscaler's floor, from which it then takes over."""
    return config.autoscaling.min_replicas if config.autoscaling.enabled else config.replicas


def most_replicas(config: ApiConfig) -> int:
    """The most API pods the stack may run at once (before a rollout's surge)."""
    return config.autoscaling.max_replicas if config.autoscaling.enabled else config.replicas


def replica_options(config: ApiConfig) -> list[str]:
    """ignore_changes of the Deployment: with an autoscaler, the count is the autoscaler's, and
    a later `pulumi up` must neither reset it nor send a value of its own for it."""
    return ["spec.replicas"] if config.autoscaling.enabled else []


def spread(config: ApiConfig, selector: dict[str, str]) -> list[TopologySpreadConstraintArgs]:
    """One pod per node (required with `hard`), and over zones where the nodes name them.

    The zone rule never blocks scheduling: on nodes without zone labels it has nothing to
    count, and a one-node cluster must still run every replica with `soft`.
    """
    node_rule = "DoNotSchedule" if config.spread == "hard" else "ScheduleAnyway"
    return [
        TopologySpreadConstraintArgs(
            max_skew=1,
            topology_key=key,
            when_unsatisfiable=rule,
            label_selector=LabelSelectorArgs(match_labels=selector),
            match_label_keys=[TEMPLATE_HASH_KEY],
        )
        for key, rule in ((HOSTNAME_KEY, node_rule), (ZONE_KEY, "ScheduleAnyway"))
    ]


def stop_seconds(config: ApiConfig) -> int:
    """terminationGracePeriodSeconds: the drain, the longest request the API allows, the stop.

    The API's own limits decide how long its longest request may take; the stack sets the fetch
    timeout, and the API's other limits keep their defaults in the pod.
    """
    fetch = FetchSettings(timeout_seconds=config.fetch_timeout_seconds)
    return termination_grace_seconds(config.drain_seconds, fetch, ApiSettings(), ServingSettings())


def drain(config: ApiConfig) -> LifecycleArgs:
    """Keep serving a while after the pod starts terminating, so that proxies and kube-proxy
    stop sending it requests before the server begins its graceful stop on SIGTERM."""
    return LifecycleArgs(
        pre_stop=LifecycleHandlerArgs(sleep=SleepActionArgs(seconds=config.drain_seconds))
    )


def autoscaler(
    name: str,
    config: ApiConfig,
    namespace: pulumi.Input[str],
    deployment: pulumi.Input[str],
    pod_labels: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> HorizontalPodAutoscaler | None:
    """The API's HorizontalPodAutoscaler on CPU, when `api.autoscaling.enabled`."""
    scaling = config.autoscaling
    if not scaling.enabled:
        return None
    return HorizontalPodAutoscaler(
        name,
        metadata=ObjectMetaArgs(name=deployment, namespace=namespace, labels=pod_labels),
        spec=HorizontalPodAutoscalerSpecArgs(
            scale_target_ref=CrossVersionObjectReferenceArgs(
                api_version="apps/v1", kind="Deployment", name=deployment
            ),
            min_replicas=scaling.min_replicas,
            max_replicas=scaling.max_replicas,
            metrics=[
                MetricSpecArgs(
                    type="Resource",
                    resource=ResourceMetricSourceArgs(
                        name="cpu",
                        target=MetricTargetArgs(
                            type="Utilization", average_utilization=scaling.cpu_percent
                        ),
                    ),
                )
            ],
            behavior=HorizontalPodAutoscalerBehaviorArgs(
                scale_down=HPAScalingRulesArgs(
                    stabilization_window_seconds=scaling.scale_down_window_seconds,
                    policies=[
                        HPAScalingPolicyArgs(
                            type="Pods",
                            value=scaling.scale_down_pods_per_minute,
                            period_seconds=60,
                        )
                    ],
                )
            ),
        ),
        opts=opts,
    )


def disruption_budget(
    name: str,
    config: ApiConfig,
    namespace: pulumi.Input[str],
    selector: dict[str, str],
    pod_labels: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> PodDisruptionBudget | None:
    """At most one API pod evicted at a time, wherever the stack may run two or more.

    `maxUnavailable: 1` rather than `minAvailable`: a single-replica stack can still be drained.
    """
    if most_replicas(config) < 2:
        return None
    return PodDisruptionBudget(
        name,
        metadata=ObjectMetaArgs(namespace=namespace, labels=pod_labels),
        spec=PodDisruptionBudgetSpecArgs(
            max_unavailable=1, selector=LabelSelectorArgs(match_labels=selector)
        ),
        opts=opts,
    )
