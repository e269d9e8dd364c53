"""The stack config's model base: camelCase keys, strict values, and one-line errors."""

import copy
from typing import Any

import pulumi
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from service.fields import KindChecked, dotted, problem
from service.settings import EnvSettings, env_name

PROJECT = "kube-image-processing"
ENV_KEYWORD = "x-environment-variable"  # in the schema: the variable a mirrored key sets


class ConfigError(pulumi.RunError):
    """A stack config value is wrong; one line names the key path and the rule."""


def mirror(model: type[EnvSettings], field: str) -> Any:
    """A stack key that sets one of the service's settings: its default, bounds and words."""
    info = copy.copy(model.model_fields[field])
    info.validation_alias = info.alias = info.alias_priority = None
    info.json_schema_extra = {ENV_KEYWORD: env_name(model, field)}
    return info


class StackModel(KindChecked):
    """One object of the stack file: camelCase keys, unknown keys refused, "" and null unset.

    A partial object merges with its field's default, so setting only
    `resources.limits.memory` keeps the other defaults of that component.
    """

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _unset_and_merge(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        values = {key: value for key, value in data.items() if value is not None and value != ""}
        for info in cls.model_fields.values():
            key = str(info.alias)
            if info.default is None and values.get(key) == {}:
                del values[key]  # an empty object for an optional one: unset as well
            elif isinstance(info.default, BaseModel) and isinstance(values.get(key), dict):
                values[key] = _merged(
                    info.default.model_dump(by_alias=True, exclude_none=True), values[key]
                )
        return values


def _merged(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """`given` over `base`, key by key, objects merged the same way all the way down."""
    deeper = {
        key: isinstance(value, dict) and isinstance(base.get(key), dict)
        for key, value in given.items()
    }
    return base | {
        key: _merged(base[key], value) if deeper[key] else value for key, value in given.items()
    }


def config_error(model: type[BaseModel], error: ValidationError, raw: Any) -> ConfigError:
    """One line: the key path, then what is wrong (with the closest known key for a typo)."""
    loc, what = problem(model, error, raw)
    return ConfigError(f"{dotted(loc)}: {what}")
