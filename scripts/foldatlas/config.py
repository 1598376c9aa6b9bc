"""Configuration validation against the JSON schema, with messages that name the key.

Defaults from the schema are filled in first (every key has one), then every error is
reported at once as ``config key 'filter.min_plddt' = 70 is out of range: expected a
number in [0, 1] ...``. Unknown keys are errors, with a suggestion for typos.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import os
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from .errors import ConfigError

__all__ = ["SCHEMA_PATH", "load_schema", "fill_defaults", "validate_config", "validate_section", "schema_markdown"]

#: The configuration schema: the one place that holds every key's default.
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def load_schema(path: str | os.PathLike[str] = SCHEMA_PATH) -> dict[str, Any]:
    """Read a YAML or JSON schema file (by default foldatlas's own)."""
    if Path(path) == SCHEMA_PATH:
        return copy.deepcopy(_shipped_schema())
    with open(path) as fh:
        return yaml.safe_load(fh)


@functools.cache
def _shipped_schema() -> dict[str, Any]:
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def fill_defaults(instance: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Insert every missing key that has a ``default`` in ``schema``, recursively, in place."""
    props = schema.get("properties", {})
    for key, sub in props.items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if isinstance(instance.get(key), dict) and sub.get("type") == "object":
            fill_defaults(instance[key], sub)
    return instance


def _path(error: ValidationError, prefix: str = "") -> str:
    return ".".join([*([prefix] if prefix else []), *(str(p) for p in error.absolute_path)]) or "<top level>"


def _range(sub: dict[str, Any]) -> str:
    lo = sub.get("minimum", sub.get("exclusiveMinimum"))
    hi = sub.get("maximum", sub.get("exclusiveMaximum"))
    kind = "an integer" if sub.get("type") == "integer" else "a number"
    left = "(" if "exclusiveMinimum" in sub else "["
    right = ")" if "exclusiveMaximum" in sub else "]"
    if lo is not None and hi is not None:
        return f"{kind} in {left}{lo}, {hi}{right}"
    if lo is not None:
        return f"{kind} {'>' if left == '(' else '>='} {lo}"
    return f"{kind} {'<' if right == ')' else '<='} {hi}"


def _message(error: ValidationError, prefix: str = "") -> str:
    key = _path(error, prefix)
    sub = error.schema if isinstance(error.schema, dict) else {}
    value = error.instance
    hint = f" ({sub['description']})" if sub.get("description") and error.validator != "additionalProperties" else ""
    if error.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"config key '{key}' = {value!r} is out of range: expected {_range(sub)}{hint}"
    if error.validator == "type":
        return (
            f"config key '{key}' = {value!r} has the wrong type: expected {sub.get('type')}, "
            f"found {type(value).__name__}{hint}"
        )
    if error.validator == "enum":
        return f"config key '{key}' = {value!r}: expected one of {sub.get('enum')}{hint}"
    if error.validator == "additionalProperties":
        known = sorted(sub.get("properties", {}))
        lines = []
        for extra in sorted(set(value) - set(known)):
            full = extra if key == "<top level>" else f"{key}.{extra}"
            close = difflib.get_close_matches(extra, known, n=1)
            guess = f" (did you mean '{close[0]}'?)" if close else ""
            lines.append(f"unknown config key '{full}'{guess}; known keys here: {', '.join(known)}")
        return "\n".join(lines)
    return f"config key '{key}' = {value!r}: {error.message}{hint}"


def validate_config(config: dict[str, Any], schema_path: str | os.PathLike[str] = SCHEMA_PATH) -> dict[str, Any]:
    """Fill defaults into ``config`` (in place) and validate it against the schema.

    Raises
    ------
    ConfigError
        With one line per problem; ``key`` and ``value`` are those of the first.
    """
    schema = load_schema(schema_path)
    fill_defaults(config, schema)
    _raise_errors(Draft202012Validator(schema).iter_errors(config))
    return config


def validate_section(name: str, section: dict[str, Any] | None) -> dict[str, Any]:
    """One top-level section (``fold``...) with its defaults filled, validated against the
    shipped schema; errors name the full key (``fold.num_recycles``). ``section`` is not changed.

    Raises
    ------
    ConfigError
        With one line per problem; ``key`` and ``value`` are those of the first.
    """
    schema = load_schema()
    if name not in schema["properties"]:
        raise ConfigError(f"unknown config section {name!r}; known: {', '.join(schema['properties'])}", key=name)
    sub = schema["properties"][name]
    filled = fill_defaults(copy.deepcopy(dict(section or {})), sub)
    _raise_errors(Draft202012Validator(sub).iter_errors(filled), prefix=name)
    return filled


def _raise_errors(errors: Any, prefix: str = "") -> None:
    errors = sorted(errors, key=lambda e: list(e.absolute_path))
    if errors:
        text = "\n".join(_message(e, prefix) for e in errors)
        raise ConfigError(f"invalid configuration:\n{text}", key=_path(errors[0], prefix), value=errors[0].instance)


def schema_markdown(schema: dict[str, Any]) -> str:
    """A Markdown table of every key (dotted path, type, default, description) of the schema."""
    rows = ["| key | type | default | description |", "| --- | --- | --- | --- |"]

    def kind(sub: dict[str, Any]) -> str:
        if "enum" in sub:
            return " \\| ".join(f"`{v}`" for v in sub["enum"])
        if "anyOf" in sub:
            return " or ".join(kind(s) for s in sub["anyOf"])
        t = sub.get("type", "")
        t = " or ".join(t) if isinstance(t, list) else t
        lo = sub.get("minimum", sub.get("exclusiveMinimum"))
        hi = sub.get("maximum", sub.get("exclusiveMaximum"))
        if lo is not None or hi is not None:
            t += f" {_range(sub).split(' ', 2)[-1]}" if lo is not None and hi is not None else f" ({_range(sub)})"
        return t

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, sub in node.get("properties", {}).items():
            path = f"{prefix}{key}"
            if sub.get("type") == "object" and "properties" in sub:
                rows.append(f"| **`{path}`** | section | | {sub.get('description', '')} |")
                walk(sub, path + ".")
                continue
            default = json.dumps(sub.get("default"))
            desc = " ".join(str(sub.get("description", "")).split())
            rows.append(f"| `{path}` | {kind(sub)} | `{default}` | {desc} |")

    walk(schema, "")
    return "\n".join(rows) + "\n"
