"""Every setting, walked from the stack file through the rendered pod to what the service reads.

Nothing here lists settings by hand: the stack keys that set a service setting, and the
settings themselves, come from the models (infra/config mirrors service/settings.py). For each
such key a valid value other than its default goes into a stack file; the program renders the
pods under Pulumi's mocks; the kubelet's view of the container's env is built from the pod
spec; and the service reads it with its own start-up code. The API really starts on that env
(its app factory), against a storage endpoint that refuses, which it tolerates at start.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from k8s_objects import kubelet_env, pod_spec
from stack_render import Rendered, Variant, render_all, stack_config

from infra.config import PROJECT, ConfigError, StackConfig, parse_stack_config
from infra.config.base import ENV_KEYWORD
from infra.reference import CONTAINERS
from service.fields import model_of
from service.settings import ALL_SETTINGS, EnvSettings, env_name, field_problem

WORKLOADS = {"api": "Deployment", "publisher": "CronJob", "minio": "StatefulSet"}
# Values tried, in order, for a text setting without a default: the first its rules accept.
TEXT_CANDIDATES = ("walk-value", "eu-west-3", "https://walk.example.test/sitemaps")


def mirrored(
    model: type[Any] = StackConfig, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], str]]:
    """(stack key path, environment variable) for every key that sets a service setting."""
    for name, info in model.model_fields.items():
        key = (*path, str(info.alias or name))
        inner = model_of(info.annotation)
        if inner is not None:
            yield from mirrored(inner, key)
        elif isinstance(info.json_schema_extra, dict) and ENV_KEYWORD in info.json_schema_extra:
            yield key, str(info.json_schema_extra[ENV_KEYWORD])


def setting_of(env: str) -> tuple[type[EnvSettings], str]:
    """The settings model and field an environment variable belongs to."""
    for model in ALL_SETTINGS:
        for field in model.model_fields:
            if env_name(model, field) == env:
                return model, field
    raise AssertionError(f"{env} is no setting")


def other_value(model: type[EnvSettings], field: str) -> Any:
    """A value of the field other than its default that the field's own rules accept."""
    default = model.model_fields[field].default
    if isinstance(default, bool):
        return not default
    if isinstance(default, int | float):
        for value in (default + 1, default - 1):
            if field_problem(model, field, value) is None:
                return type(default)(value)
    for text in (f"walk-{default}", *TEXT_CANDIDATES):
        if field_problem(model, field, text) is None:
            return text
    raise AssertionError(f"no other valid value for {model.__name__}.{field}")


def stack_raw(stack: str) -> dict[str, Any]:
    prefix = f"{PROJECT}:"
    return {key[len(prefix) :]: value for key, value in stack_config(stack).items()}


def with_value(raw: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    changed = {**raw}
    node = changed
    for key in path[:-1]:
        node[key] = dict(node.get(key) or {})
        node = node[key]
    node[path[-1]] = value
    return changed


SECRETS = {
    "dev": {},
    "gateway": {"storageAccessKey": "walk-access", "storageSecretKey": "walk-secret"},
}


def plan() -> dict[str, list[tuple[tuple[str, ...], str, Any]]]:
    """Each key with its value, in the first stack whose other keys let it be set."""
    planned: dict[str, list[tuple[tuple[str, ...], str, Any]]] = {stack: [] for stack in SECRETS}
    for path, env in mirrored():
        value = other_value(*setting_of(env))
        for stack, secrets in SECRETS.items():
            try:
                parse_stack_config(with_value(stack_raw(stack), path, value), secrets)
            except ConfigError:
                continue
            planned[stack].append((path, env, value))
            break
        else:
            raise AssertionError(f"no stack accepts {'.'.join(path)}={value!r}")
    return planned


PLAN = plan()


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    variants = {}
    for stack, keys in PLAN.items():
        raw = stack_raw(stack)
        for path, _, value in keys:
            raw = with_value(raw, path, value)
        overrides = {path[0]: raw[path[0]] for path, _, _ in keys}
        variants[stack] = Variant(stack, overrides=overrides, secrets=SECRETS[stack])
    return render_all(variants, tmp_path_factory.mktemp("walk"))


def container_env(run: Rendered, container: str) -> dict[str, str]:
    (obj,) = run.of_kind(WORKLOADS[container])
    (spec,) = [c for c in pod_spec(obj)["containers"] if c["name"] == container]
    return kubelet_env(spec, obj["metadata"]["namespace"], lambda name, key: f"{name}/{key}")


def test_every_key_that_sets_a_setting_is_walked() -> None:
    walked_envs = {env for keys in PLAN.values() for _, env, _ in keys}
    assert walked_envs == {env for _, env in mirrored()}
    assert len(walked_envs) >= 8  # the API's limits and buckets, the region, retain, MinIO's mode


@pytest.mark.parametrize(
    ("stack", "path", "env", "value"),
    [(stack, path, env, value) for stack, keys in PLAN.items() for path, env, value in keys],
    ids=lambda item: ".".join(item) if isinstance(item, tuple) else str(item),
)
def test_the_value_in_the_stack_file_is_what_the_service_reads(
    walked: dict[str, Rendered], stack: str, path: tuple[str, ...], env: str, value: Any
) -> None:
    run = walked[stack]
    assert run.error is None, run.error
    model, field = setting_of(env)
    readers = [name for name, models in CONTAINERS.items() if model in models]
    seen = 0
    for container in readers:
        if not run.of_kind(WORKLOADS[container]):
            continue  # this stack has no such workload (no MinIO with external storage)
        environment = container_env(run, container)
        if env not in environment:
            continue  # a setting this container reads but the program leaves at its default
        seen += 1
        assert getattr(model.from_env(environment), field) == value, (container, environment[env])
    assert seen, f"{'.'.join(path)} reached no container's env"


def test_the_api_starts_on_the_walked_env_and_reads_those_values(
    walked: dict[str, Rendered], tmp_path: Path
) -> None:
    """The app factory itself, on the env the dev stack's pod gets; the storage endpoint and
    the metrics directory are the pod's own, so they point at loopback and a scratch dir."""
    from service.app import create_app

    environment = container_env(walked["dev"], "api")
    environment["MINIO_ENDPOINT"] = "127.0.0.1:9"
    environment["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    app = create_app(environment)
    api = app.extensions["image_api"]
    for path, env, value in PLAN["dev"]:
        model, field = setting_of(env)
        read = {
            "FetchSettings": api.fetch_settings,
            "ServingSettings": api.admission.settings,
        }.get(model.__name__)
        if read is not None:
            assert getattr(read, field) == value, ".".join(path)
    buckets = (api.storage.incoming, api.storage.processed)
    assert buckets == (environment["INCOMING_BUCKET"], environment["PROCESSED_BUCKET"])


def test_each_key_defaults_to_its_settings_default() -> None:
    """One default per setting: a stack that leaves a key unset gives the service's own."""
    config = parse_stack_config({"api": {"host": "images.example.test"}}, {})
    for path, env in mirrored():
        model, field = setting_of(env)
        node: Any = config
        for key in path:
            node = getattr(
                node, next(n for n, i in type(node).model_fields.items() if i.alias == key)
            )
        assert node == model.model_fields[field].default, ".".join(path)
