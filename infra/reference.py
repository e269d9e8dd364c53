"""What the typed models generate: the stack files' JSON Schema, the config keys that
Pulumi.yaml declares, the tables of docs/configuration.md, and docs/api.md's table of the
largest image of each kind each stack file's API converts.

    .venv/bin/python -m infra.reference          # rewrite them (make reference)
    .venv/bin/python -m infra.reference --check  # exit 1, naming each stale file
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from infra.capacity import largest_images_table
from infra.config import PROJECT, SECRETS, SET_SECRET, StackConfig
from infra.config.api import ApiConfig
from infra.config.base import ENV_KEYWORD
from service.fields import checks_of, keys_of, kind_of, literal_choices, model_of, rule
from service.settings import (
    ALL_SETTINGS,
    API_SETTINGS,
    EnvSettings,
    KubeClientSettings,
    MinioServerSettings,
    SitemapSettings,
    StorageSettings,
    default_text,
    env_text,
)

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schema" / "stack-config.schema.json"
PROJECT_FILE = ROOT / "Pulumi.yaml"
REFERENCE = ROOT / "docs" / "configuration.md"
API_DOC = ROOT / "docs" / "api.md"
PROJECT_MARK = (
    "# Generated from infra/config by `make reference`: edit the models, not what follows."
)
# Which settings each container of the stack reads; a test holds the rendered pods to it.
CONTAINERS: dict[str, tuple[type[EnvSettings], ...]] = {
    "api": API_SETTINGS,
    "publisher": (StorageSettings, SitemapSettings, KubeClientSettings),
    "minio": (MinioServerSettings,),
}


def mirrored_env(info: FieldInfo) -> str | None:
    """The environment variable a stack key sets, where it mirrors one of the settings."""
    extra = info.json_schema_extra
    return str(extra[ENV_KEYWORD]) if isinstance(extra, dict) and ENV_KEYWORD in extra else None


def _without_titles(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_titles(item) for key, item in value.items() if key != "title"}
    if isinstance(value, list):
        return [_without_titles(item) for item in value]
    return value


def stack_file_schema() -> dict[str, Any]:
    """A JSON Schema of Pulumi.<stack>.yaml: the project's keys typed, other providers' free."""
    models = _without_titles(StackConfig.model_json_schema(by_alias=True))
    keys = {f"{PROJECT}:{name}": schema for name, schema in models["properties"].items()}
    keys |= {
        f"{PROJECT}:{name}": {"$ref": "#/$defs/Secret", "description": words}
        for name, words in SECRETS.items()
    }
    known = "|".join(re.escape(key.partition(":")[2]) for key in keys)
    secret = {
        "description": f"a secret, encrypted by `{SET_SECRET} <key> <value>`",
        "type": "object",
        "properties": {"secure": {"type": "string"}},
        "required": ["secure"],
        "additionalProperties": False,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/kube-image-processing/schema/stack-config.schema.json",
        "title": f"Pulumi stack file of {PROJECT}",
        "description": "Generated from infra/config by `make reference`; see docs/configuration.md.",
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "properties": keys,
                # A misspelt key of this project is refused; other providers' keys are free.
                "patternProperties": {rf"^{re.escape(PROJECT)}:(?!({known})$)": False},
            }
        },
        "$defs": {**models.get("$defs", {}), "Secret": secret},
    }


def project_config() -> dict[str, Any]:
    """Pulumi.yaml's `config:` declarations: every top-level key, typed, with its default."""
    declared: dict[str, Any] = {}
    for name, info in StackConfig.model_fields.items():
        kind = "object" if model_of(info.annotation) else _pulumi_type(info)
        default = {} if kind == "object" else info.default
        declared[str(info.alias or name)] = {
            "type": kind,
            "description": info.description,
            "default": default,
        }
    # Optional secrets default to "" (unset): a declared `secret: true` would make them required.
    for name, words in SECRETS.items():
        declared[name] = {
            "type": "string",
            "description": f"secret: {words}; {SET_SECRET} {name} <value>",
            "default": "",
        }
    return declared


def _pulumi_type(info: FieldInfo) -> str:
    annotation = info.annotation
    if annotation is bool or "true or false" in rule(info):
        return "boolean"
    return "integer" if annotation is int else "string"


def _rows(model: type[BaseModel], prefix: str, default: Any) -> Iterator[list[str]]:
    for name, info in model.model_fields.items():
        key = f"{prefix}{info.alias or name}"
        value = getattr(default, name, info.default) if default is not None else info.default
        inner = model_of(info.annotation)
        if inner is not None:
            listed = get_origin(info.annotation) is list
            words = info.description or (inner.__doc__ or "").split("\n")[0]
            yield [f"`{key}`", "list of objects" if listed else "object", "", "", words]
            yield from _rows(inner, f"{key}[]." if listed else f"{key}.", None if listed else value)
            continue
        env = mirrored_env(info)
        words = (info.description or "") + (f" (sets `{env}`)" if env else "")
        yield [f"`{key}`", _type_words(info), _default(value), _allowed(info), words]


def _item(info: FieldInfo) -> FieldInfo:
    """A list field's items, as a field of their own; any other field as it is."""
    if get_origin(info.annotation) is not list:
        return info
    return FieldInfo.from_annotation(get_args(info.annotation)[0])


def _type_words(info: FieldInfo) -> str:
    if get_origin(info.annotation) is list:
        return "list of " + _type_words(_item(info)).replace("string", "strings")
    if get_origin(info.annotation) is dict:
        return "map of strings"
    if literal_choices(info.annotation):
        return "one of " + ", ".join(f"`{choice}`" for choice in literal_choices(info.annotation))
    words = rule(info)
    for cut in (" from ", " of ", " above ", " below ", " at most "):
        words = words.split(cut)[0]
    return words.removeprefix("an ").removeprefix("a ")


def _allowed(info: FieldInfo) -> str:
    """The bounds and the checks of a field, without "must be"."""
    item = _item(info)
    words = [check.removeprefix("must be ") for check in checks_of(item)]
    kind = kind_of(item)
    bounds = rule(item)
    if kind is not None and bounds.startswith(f"{kind.noun} "):
        words.insert(0, bounds.removeprefix(f"{kind.noun} ").removeprefix("of "))
    return "; ".join(words)


def _default(value: Any) -> str:
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return ""
    return f"`{env_text(value) if isinstance(value, str | int | float) else json.dumps(value)}`"


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def stack_keys_table() -> str:
    """Every stack key: its type, default, what is allowed and what it does."""
    rows = list(_rows(StackConfig, "", None))
    rows += [
        [f"`{name}`", "secret", "unset", f"`{SET_SECRET} {name}`", words]
        for name, words in SECRETS.items()
    ]
    return _table(["key", "type", "default", "allowed", "meaning"], rows)


def environment_table() -> str:
    """Every environment variable: its type, default, bounds, words, and who reads it."""
    mirrored = {env: key for key, env in _stack_envs(StackConfig, "")}
    rows = []
    for model in ALL_SETTINGS:
        readers = ", ".join(name for name, models in CONTAINERS.items() if model in models)
        for info in model.model_fields.values():
            names = keys_of(info)
            shown = f"`{names[0]}`" + "".join(f" (or `{other}`)" for other in names[1:])
            source = f"`{mirrored[names[0]]}`" if names[0] in mirrored else ""
            rows.append(
                [
                    shown,
                    _type_words(info),
                    default_text(info).replace("'", "`"),
                    _allowed(info),
                    info.description or "",
                    readers,
                    source,
                ]
            )
    return _table(
        ["variable", "type", "default", "allowed", "meaning", "read by", "stack key"], rows
    )


def _stack_envs(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str]]:
    for name, info in model.model_fields.items():
        key = f"{prefix}{info.alias or name}"
        inner = model_of(info.annotation)
        if inner is not None:
            yield from _stack_envs(inner, f"{key}.")
        elif mirrored_env(info):
            yield key, str(mirrored_env(info))


def stack_file_apis() -> dict[str, ApiConfig]:
    """The `api` object of each example stack file, by stack name."""
    return {
        path.name.split(".")[1]: ApiConfig.model_validate(
            yaml.safe_load(path.read_text())["config"].get(f"{PROJECT}:api", {})
        )
        for path in sorted(ROOT.glob("Pulumi.*.yaml"))
    }


def _replace_between(path: Path, text: str, name: str, body: str) -> str:
    start, end = f"<!-- generated: {name} -->", f"<!-- end of generated: {name} -->"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{path.relative_to(ROOT)}: the marker {start} is missing")
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text)


def generated() -> dict[Path, str]:
    """Each generated file's whole new text."""
    project = PROJECT_FILE.read_text()
    head = project.split(PROJECT_MARK)[0].rstrip("\n")
    config = yaml.safe_dump({"config": project_config()}, sort_keys=False, width=100)
    reference = REFERENCE.read_text()
    reference = _replace_between(REFERENCE, reference, "stack keys", stack_keys_table())
    reference = _replace_between(REFERENCE, reference, "environment", environment_table())
    api_doc = _replace_between(
        API_DOC, API_DOC.read_text(), "largest images", largest_images_table(stack_file_apis())
    )
    return {
        SCHEMA: json.dumps(stack_file_schema(), indent=2) + "\n",
        PROJECT_FILE: f"{head}\n{PROJECT_MARK}\n{config}",
        REFERENCE: reference,
        API_DOC: api_doc,
    }


def main(argv: list[str]) -> int:
    stale = [
        path for path, text in generated().items() if not path.is_file() or path.read_text() != text
    ]
    if argv[:1] == ["--check"]:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is stale: run make reference and commit it")
        return 1 if stale else 0
    for path, text in generated().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
