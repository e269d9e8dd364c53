"""Typed value kinds shared by the env settings and the stack config, and their one-line errors.

pydantic's lax mode would read "3\\n", "3.0", "١٢" or True as the integer 3, 3, 12 or 1; these
kinds take only what a person means by the value, so a stray newline from a YAML block or a
float where a count belongs is refused like any other mistake.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import (
    AfterValidator,
    BaseModel,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

_DIGITS = re.compile(r"-?[0-9]{1,19}")
_DECIMAL = re.compile(r"-?([0-9]{1,15}(\.[0-9]{0,9})?|\.[0-9]{1,9})")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
INT32_MAX = 2**31 - 1


class Kind:
    """A field's kind: the check that takes only what a person means, and its name in words."""

    def __init__(self, noun: str, check: Callable[[Any], Any]) -> None:
        self.noun = noun
        self.check = check


def _wrong_kind() -> PydanticCustomError:
    return PydanticCustomError("wrong_kind", "the value is not of the field's kind")


def _integer(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _wrong_kind()
    if isinstance(value, str) and not _DIGITS.fullmatch(value):
        raise _wrong_kind()
    return int(value)


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _wrong_kind()
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        raise _wrong_kind()
    number = float(value)
    if not math.isfinite(number):
        raise _wrong_kind()
    return number


def _flag(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _wrong_kind()


def _env_flag(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in (*_TRUE, *_FALSE):
        return value.lower() in _TRUE
    raise _wrong_kind()


def _text(value: Any) -> Any:
    if not isinstance(value, str):
        raise _wrong_kind()
    return value


# The kinds mark a field; KindChecked applies the check before pydantic's own validation,
# which keeps the bounds in the core schema (so the JSON schema says minimum, not ge).
Integer = Annotated[int, Kind("an integer", _integer)]
Number = Annotated[float, Kind("a number", _number)]
# A stack file's true or false (YAML 1.2, as Pulumi reads it: "yes" is a string there).
Flag = Annotated[bool, Kind("true or false", _flag)]
# An environment variable's boolean: 1/true/yes/on or 0/false/no/off.
EnvFlag = Annotated[bool, Kind("true or false", _env_flag)]
Text = Annotated[str, Kind("a string", _text)]


def _metadata(info: FieldInfo) -> list[Any]:
    """A field's constraints and marks, also where it is optional (Annotated inside Optional)."""
    extras = list(info.metadata)
    optional = get_origin(info.annotation) in (Union, type(int | None))
    for arg in get_args(info.annotation) if optional else ():
        if get_origin(arg) is Annotated:
            for item in get_args(arg)[1:]:
                extras.extend(item.metadata if isinstance(item, FieldInfo) else [item])
    return extras


def kind_of(info: FieldInfo) -> Kind | None:
    """The kind a field holds, also where it is optional."""
    return next((item for item in _metadata(info) if isinstance(item, Kind)), None)


class KindChecked(BaseModel):
    """A model whose fields take only values of their kind (see Kind)."""

    @field_validator("*", mode="before")
    @classmethod
    def _of_kind(cls, value: Any, info: ValidationInfo) -> Any:
        kind = kind_of(cls.model_fields[str(info.field_name)])
        return value if kind is None or value is None else kind.check(value)


def refuse(message: str, key: str | None = None) -> PydanticCustomError:
    """A rule across several fields, broken: `message` says what, about `key` of the model."""
    return PydanticCustomError("rule", message, {"key": key} if key else None)


@dataclasses.dataclass(frozen=True)
class Check(AfterValidator):
    """A check after the kind's, with the words its refusal and the reference use."""

    rule: str = ""


def matching(pattern: str, rule: str) -> Check:
    """A text check: the whole value matches `pattern`, else `rule` says what it must be."""
    compiled = re.compile(pattern)
    return checked(lambda value: compiled.fullmatch(value) is not None, rule)


def checked(test: Callable[[Any], bool], rule: str) -> Check:
    """A check by `test`; `rule` says what the value must be when it fails."""

    def check(value: Any) -> Any:
        if not test(value):
            raise ValueError(rule)
        return value

    return Check(check, rule)


def checks_of(info: FieldInfo) -> list[str]:
    """The words of every Check on a field (also where it is optional)."""
    return [item.rule for item in _metadata(info) if isinstance(item, Check)]


def _bounds(info: FieldInfo) -> tuple[Any, Any, bool, bool]:
    """The lowest and highest value allowed (None: no bound), and whether each is excluded."""
    low: Any = None
    high: Any = None
    low_open = high_open = False
    for item in _metadata(info):
        if isinstance(item, annotated_types.Ge):
            low = item.ge
        elif isinstance(item, annotated_types.Gt):
            low, low_open = item.gt, True
        elif isinstance(item, annotated_types.Le):
            high = item.le
        elif isinstance(item, annotated_types.Lt):
            high, high_open = item.lt, True
    return low, high, low_open, high_open


def _show(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def rule(info: FieldInfo) -> str:
    """What a field's value must be, in words: "an integer from 1 to 64", "one of a, b"."""
    choices = literal_choices(info.annotation)
    if choices:
        return "one of " + ", ".join(str(choice) for choice in choices)
    kind = kind_of(info)
    noun = kind.noun if kind else "a valid value"
    lengths = [item for item in _metadata(info) if isinstance(item, annotated_types.MinLen)]
    if lengths:
        return f"{noun} of at least {lengths[0].min_length} characters"
    low, high, low_open, high_open = _bounds(info)
    if low is not None and high is not None and not low_open and not high_open:
        return f"{noun} from {_show(low)} to {_show(high)}"
    parts = []
    if low is not None:
        parts.append(f"above {_show(low)}" if low_open else f"of {_show(low)} or more")
    if high is not None:
        parts.append(f"below {_show(high)}" if high_open else f"at most {_show(high)}")
    return " ".join([noun, " and ".join(parts)]) if parts else noun


def literal_choices(annotation: Any) -> tuple[Any, ...]:
    """The allowed values of a Literal annotation (also inside Optional), else ()."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    if get_origin(annotation) in (Union, type(int | None)):
        for arg in get_args(annotation):
            if get_origin(arg) is Literal:
                return get_args(arg)
    return ()


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The model class an annotation holds (directly, in Optional, or as list items)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = model_of(arg)
        if found is not None:
            return found
    return None


def field_by_key(model: type[BaseModel], key: str) -> tuple[str, FieldInfo] | None:
    """The field a key names, by alias (env name, stack key) or by field name."""
    for name, info in model.model_fields.items():
        if key == name or key in keys_of(info):
            return name, info
    return None


def keys_of(info: FieldInfo) -> tuple[str, ...]:
    """Every key a field is read from: its alias, or each of its alias choices."""
    alias = info.validation_alias
    if alias is None:
        return (info.alias,) if info.alias else ()
    if isinstance(alias, str):
        return (alias,)
    return tuple(choice for choice in getattr(alias, "choices", ()) if isinstance(choice, str))


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[list[FieldInfo], type[BaseModel]]:
    """The fields along `loc`, and the model its last key was looked up in."""
    fields: list[FieldInfo] = []
    current = owner = model
    for key in loc:
        if not isinstance(key, str):
            continue  # a list index: the item's model is already current
        owner = current
        found = field_by_key(current, key)
        if found is None:
            break
        fields.append(found[1])
        current = model_of(found[1].annotation) or current
    return fields, owner


def dotted(loc: tuple[Any, ...]) -> str:
    """A key path as `pulumi config set --path` takes it: a.b[0].c."""
    text = ""
    for key in loc:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text


def shown(value: Any) -> str:
    """A value as the user wrote it, quoted, cut short when long."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 80 else f"{text[:60]}…({len(text)} characters)"


def _as_written(raw: Any, loc: tuple[Any, ...], fallback: Any) -> Any:
    """The value at `loc` in the input as the user wrote it, before any kind check converted it."""
    for key in loc:
        if (isinstance(raw, dict) and key in raw) or (
            isinstance(raw, list) and isinstance(key, int) and key < len(raw)
        ):
            raw = raw[key]
        else:
            return fallback
    return raw


def problems(
    model: type[BaseModel], error: ValidationError, raw: Any = None
) -> list[tuple[tuple[Any, ...], str]]:
    """Each error's location and what is wrong, as "must be …, got …" or the check's words.

    `raw` is the input as given, so the value is shown as written ("0", not 0.0).
    """
    return [_explained(model, each, raw) for each in error.errors(include_url=False)]


def problem(
    model: type[BaseModel], error: ValidationError, raw: Any = None
) -> tuple[tuple[Any, ...], str]:
    """The first error's location and what is wrong (see `problems`)."""
    return _explained(model, error.errors(include_url=False)[0], raw)


def _explained(model: type[BaseModel], first: Any, raw: Any) -> tuple[tuple[Any, ...], str]:
    loc: tuple[Any, ...] = tuple(first["loc"])
    value = _as_written(raw, loc, first["input"])
    fields, owner = _walk(model, loc)
    kind = first["type"]
    if kind == "missing":
        return loc, "is required but not set"
    if kind == "extra_forbidden":
        known = sorted(keys_of(info)[0] for info in owner.model_fields.values())
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"known keys here: {', '.join(known)}"
        return loc, f"is not a known key; {hint}"
    if kind == "rule":
        key = (first.get("ctx") or {}).get("key")
        return (*loc, key) if key else loc, str(first["msg"])
    # A secret's value is never repeated, not even in an error.
    got = f", got {shown(value)}" if not fields or fields[-1].repr else ""
    if kind == "value_error":
        return loc, str(first["msg"]).removeprefix("Value error, ") + got
    wanted = rule(fields[-1]) if fields else "a valid value"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        wanted = "an object of keys and values"
    elif kind == "list_type":
        wanted = "a list"
    return loc, f"must be {wanted}{got}"
