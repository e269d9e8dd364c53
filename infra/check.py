"""Check stack files as `pulumi up` would read them, without a cluster: `make check STACK=dev`.

    .venv/bin/python -m infra.check Pulumi.dev.yaml [Pulumi.prod.yaml ...]

Each mistake is one line, `Pulumi.dev.yaml: api.replicas: …`, or `file:line: …` for YAML
syntax. The file is read as Pulumi reads it (YAML 1.2: `yes` is a string, a key may appear
once), every key is checked against the typed models, and then the program itself runs under
Pulumi's mocks with that config, so a rule it applies anywhere stops the check as it would
stop `pulumi up`. Secrets are encrypted in the file: their presence is checked, their values
are not. Exit status: 0 when every file is fine (warnings allowed), 1 otherwise.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from infra.config import PROJECT, SECRETS, StackConfig
from infra.offline import run_program, stack_config_values
from service.fields import dotted, problems

# Stands in for an encrypted secret: long enough for every length rule a secret has.
PLACEHOLDER = "encrypted-value-not-read-by-this-check"


class _StackFileLoader(yaml.SafeLoader):
    """YAML as Pulumi's Go parser reads a stack file: 1.2's booleans, duplicate keys refused."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key} appears twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _integer(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    try:
        return loader.construct_yaml_int(node)  # type: ignore[no-untyped-call]
    except ValueError:  # more digits than Python reads: the models refuse the text instead
        return node.value


_StackFileLoader.add_constructor("tag:yaml.org,2002:int", _integer)
_StackFileLoader.yaml_implicit_resolvers = {
    first: [(tag, rule) for tag, rule in rules if tag != "tag:yaml.org,2002:bool"]
    for first, rules in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StackFileLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _stack_file(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The file's `config:` mapping, or the one line that says why there is none."""
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_StackFileLoader)  # noqa: S506 - a SafeLoader
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f":{mark.line + 1}" if mark else ""
        what = " ".join(str(part) for part in (error.context, error.problem) if part)
        return {}, [f"{path.name}{line}: {what}"]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        return {}, [f"{path.name}: cannot be read: {error}"]
    if document is None:
        return {}, []
    if not isinstance(document, dict) or not isinstance(document.get("config") or {}, dict):
        return {}, [f"{path.name}: must be a mapping whose config: is a mapping of keys"]
    return dict(document.get("config") or {}), []


def _lines(name: str, config: dict[str, Any]) -> Iterator[str]:
    """One line per mistake in the keys and the models; the program then sees the rest."""
    raw: dict[str, Any] = {}
    prefix = f"{PROJECT}:"
    for key, value in config.items():
        if not isinstance(key, str) or ":" not in key:
            yield f"{name}: {key}: config keys are namespace:name, such as {prefix}{key}"
            continue
        space, _, short = key.partition(":")
        if space != PROJECT:
            if difflib.SequenceMatcher(None, space, PROJECT).ratio() >= 0.8:
                yield (
                    f"{name}: warning: {key}: the program reads only {prefix}* keys, so it "
                    f"ignores this one; did you mean {prefix}{short}?"
                )
            continue
        if isinstance(value, dict) and "secure" in value and short not in SECRETS:
            yield f"{name}: warning: {short}: is encrypted, so only pulumi up can check it"
        elif short not in SECRETS:
            raw[short] = value
    secrets = {key.partition(":")[2] for key in config} & set(SECRETS)
    try:
        StackConfig.model_validate(raw, context={"secrets": secrets})
    except ValidationError as error:
        for loc, what in problems(StackConfig, error, raw):
            yield f"{name}: {dotted(loc)}: {what}"


def _engine_values(config: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The config as the engine would pass it: secrets decrypted (here: placeholders)."""
    values: dict[str, Any] = {}
    secret_keys = []
    for key, value in config.items():
        encrypted = isinstance(value, dict) and "secure" in value
        if encrypted and key.partition(":")[2] in SECRETS:
            values[key] = PLACEHOLDER
            secret_keys.append(key)
        elif not encrypted and key.startswith(f"{PROJECT}:"):
            values[key] = value
    return stack_config_values(values), secret_keys


def check(path: Path) -> list[str]:
    """Every line to print for one stack file; an error line does not start with a warning."""
    config, lines = _stack_file(path)
    if lines:
        return lines
    lines = list(_lines(path.name, config))
    if any(": warning: " not in line for line in lines):
        return lines
    stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    values, secret_keys = _engine_values(config)
    report = run_program(stack, values, secret_keys, preview=True)
    lines += [f"{path.name}: warning: {warning}" for warning in report["warnings"]]
    if report["error"] is not None:
        error = report["error"]
        plain = error["type"] in ("ConfigError", "RunError")
        lines.append(
            f"{path.name}: {error['message'] if plain else error['type'] + ': ' + error['message']}"
        )
    else:
        created = sum(1 for record in report["resources"] if record["custom"])
        lines.append(f"{path.name}: ok: {created} resources, as pulumi preview would plan them")
    return lines


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print((__doc__ or "").split("\n\n", 2)[1].strip())
        return 0 if argv else 2
    failed = False
    for name in argv:
        path = Path(name)
        if not path.is_file():
            print(f"{name}: no such stack file (stack files are Pulumi.<stack>.yaml)")
            failed = True
            continue
        # The program runs once per process: a second file gets a process of its own.
        lines = check(path) if len(argv) == 1 else _in_own_process(path)
        print("\n".join(lines))
        failed |= any(": warning: " not in line and ": ok: " not in line for line in lines)
    return 1 if failed else 0


def _in_own_process(path: Path) -> list[str]:
    import subprocess

    done = subprocess.run(  # noqa: S603 - this module, on a file the user named
        [sys.executable, "-m", "infra.check", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return (done.stdout + done.stderr).splitlines()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
