"""What the typed config generates is fresh, and says what the program does.

The stack-file schema, Pulumi.yaml's config declarations and docs/configuration.md come from
the models (infra/reference.py); a stale one fails here. The schema is exercised with the real
validator editors use (JSON Schema 2020-12), on the committed stack files and on wrong ones.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
import yaml
from stack_render import ROOT, Rendered, stack_config

from infra import reference
from infra.config import PROJECT, SECRETS, StackConfig, parse_stack_config
from infra.reference import CONTAINERS
from service.fields import keys_of

STACKS = ("dev", "prod", "gateway")
MODELINE = "# yaml-language-server: $schema=./schema/stack-config.schema.json"


def test_every_generated_file_is_fresh() -> None:
    stale = [
        str(path.relative_to(ROOT))
        for path, text in reference.generated().items()
        if not path.is_file() or path.read_text() != text
    ]
    assert not stale, f"stale: {stale}; run make reference and commit the result"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(reference.SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("stack", STACKS)
def test_the_stack_files_name_the_schema_and_follow_it(stack: str, validator: Any) -> None:
    path = ROOT / f"Pulumi.{stack}.yaml"
    assert path.read_text().splitlines()[0] == MODELINE
    errors = [error.message for error in validator.iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


def _dev_with(**config: Any) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    document = copy.deepcopy(document)
    document["config"].update(config)
    return document


@pytest.mark.parametrize(
    ("config", "wrong"),
    [
        ({f"{PROJECT}:apii": {}}, "apii"),
        ({f"{PROJECT}:minioRootPassword": "in-clear-text"}, "minioRootPassword"),
        ({f"{PROJECT}:api": {"replicas": 0}}, "replicas"),
        ({f"{PROJECT}:api": {"replica": 2}}, "replica"),
        ({f"{PROJECT}:sitemaps": {"source": "ftp"}}, "source"),
        ({f"{PROJECT}:namespaceExists": "yes"}, "namespaceExists"),
    ],
)
def test_the_schema_refuses_what_the_program_refuses(
    config: dict[str, Any], wrong: str, validator: Any
) -> None:
    errors = list(validator.iter_errors(_dev_with(**config)))
    # Editors mark the key; the validator reports an unknown key at its parent object.
    assert errors, config
    shown = [f"{error.json_path} {error.message}" for error in errors]
    assert wrong == "apii" or any(wrong in line for line in shown), shown


def test_the_schema_leaves_other_providers_keys_and_takes_encrypted_secrets(
    validator: Any,
) -> None:
    document = _dev_with(
        **{
            "kubernetes:enableServerSideApply": "true",
            f"{PROJECT}:minioRootPassword": {"secure": "v1:abc"},
        }
    )
    assert list(validator.iter_errors(document)) == []


def test_pulumi_yaml_declares_every_top_level_key_as_pulumi_accepts_it() -> None:
    """Pulumi refuses a declared key a stack lacks unless it has a default, an explicit type
    outside string/integer/boolean/array/object, and `secret: true` with a plain default."""
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == PROJECT
    declared = project["config"]
    expected = {str(info.alias) for info in StackConfig.model_fields.values()} | set(SECRETS)
    assert set(declared) == expected
    for key, declaration in declared.items():
        assert declaration["type"] in ("string", "integer", "boolean", "object"), key
        assert "default" in declaration, key
        assert declaration.get("secret") is not True, key
        assert declaration["description"], key
    # The declared defaults are a valid stack config by the program's own rules.
    defaults = {
        key: declaration["default"]
        for key, declaration in declared.items()
        if key not in SECRETS and declaration["default"] != {}
    }
    config = parse_stack_config({**defaults, "api": {"host": "images.example.test"}}, {})
    assert config.namespace == declared["namespace"]["default"]


@pytest.mark.parametrize("stack", STACKS)
def test_each_container_reads_only_the_settings_the_reference_says(
    stack: str, variant: Any
) -> None:
    run: Rendered = variant(stack)
    workloads = {"api": "Deployment", "publisher": "CronJob", "minio": "StatefulSet"}
    for container, models in CONTAINERS.items():
        names = {
            key for model in models for info in model.model_fields.values() for key in keys_of(info)
        }
        objects = run.of_kind(workloads[container])
        for obj in objects:
            spec = obj["spec"]
            pod = (
                spec["jobTemplate"]["spec"]["template"]["spec"]
                if "jobTemplate" in spec
                else spec["template"]["spec"]
            )
            for each in pod["containers"]:
                if each["name"] == container:
                    unknown = {entry["name"] for entry in each.get("env", [])} - names
                    assert not unknown, (
                        f"{container} gets {unknown}, which infra/reference.py does not list"
                    )


def test_the_stack_files_set_only_keys_the_models_know() -> None:
    for stack in STACKS:
        for key in stack_config(stack):
            namespace, _, name = key.partition(":")
            if namespace == PROJECT:
                assert name in {str(i.alias) for i in StackConfig.model_fields.values()} | set(
                    SECRETS
                )
