"""Configuration validation against the JSON schema, with messages that name the key.

Defaults from the schema are filled in first (every key has one), then every error is
reported at once as ``config key 'filter.min_plddt' = 70 is out of range: expected a
number in [0, 1] ...``. Unknown keys are errors, with a suggestion for typos.

Before the schema is looked at, the configuration is walked once with a budget of
:data:`MAX_CONFIG_VALUES` values, counting a value shared through YAML anchors and
aliases each time it is reached (as it would be expanded): a configuration larger than
that (a YAML "billion laughs" alias bomb, or a self-referencing one) is refused at
once, without expanding it. The same walk refuses NaN and infinity for every number
(YAML ``.nan``, ``.inf``: JSON-schema range checks are false for NaN, so they would
pass). Values echoed in messages are shortened to :data:`MAX_ECHO` characters.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import math
import os
import reprlib
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from .errors import ConfigError

__all__ = [
    "SCHEMA_PATH",
    "MAX_CONFIG_VALUES",
    "MAX_DEPTH",
    "MAX_ECHO",
    "load_schema",
    "fill_defaults",
    "check_values",
    "validate_config",
    "validate_section",
    "schema_order",
    "schema_markdown",
    "shorten",
]

#: The configuration schema: the one place that holds every key's default.
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


#: Most values (leaves and containers, shared ones counted each time) a configuration may hold.
MAX_CONFIG_VALUES = 200_000
#: Deepest nesting of a configuration (the shipped schema nests three levels).
MAX_DEPTH = 32
#: Most characters of a configuration value echoed in an error message.
MAX_ECHO = 200
#: Pairs of keys whose values must not decrease (lower, upper).
_ORDERED = (("ingest", "min_length", "max_length"),)
#: Most problems listed in one error.
_MAX_PROBLEMS = 20

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 3, 8, 8, 80, 80


def shorten(value: Any) -> str:
    """``repr(value)``, bounded: at most :data:`MAX_ECHO` characters, whatever its size."""
    text = _REPR.repr(value)
    return text if len(text) <= MAX_ECHO else text[: MAX_ECHO - 5] + "...]"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ECHO else text[: MAX_ECHO - 3] + "..."


def check_values(config: Any, prefix: str = "") -> list[str]:
    """Problems of the loaded configuration that the schema cannot see: more than
    :data:`MAX_CONFIG_VALUES` values once aliases are expanded, or nesting deeper than
    :data:`MAX_DEPTH` (both checked without expanding anything), and numbers that are
    NaN or infinite. One message per problem."""
    problems: list[str] = []
    stack: list[tuple[Any, tuple | None, int]] = [(config, (None, prefix) if prefix else None, 0)]
    seen = 0
    while stack:
        value, where, depth = stack.pop()
        seen += 1
        if seen > MAX_CONFIG_VALUES or depth > MAX_DEPTH:
            return [
                f"the configuration holds more than {MAX_CONFIG_VALUES:,} values or nests deeper than {MAX_DEPTH} levels once "
                "its YAML aliases are expanded (an alias bomb or a self-referencing alias?); expected a configuration of ordinary size"
            ]
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"config key '{_dotted(where)}' = {value!r} is not a finite number: expected a number (YAML .nan and .inf are refused)")
        elif isinstance(value, dict):
            stack.extend((v, (where, k), depth + 1) for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((v, (where, i), depth + 1) for i, v in enumerate(value))
    return sorted(problems)


def _dotted(where: tuple | None) -> str:
    """The dotted key of a (parent, key) chain built by :func:`check_values`."""
    keys = []
    while where is not None:
        where, key = where
        keys.append(str(key))
    return ".".join(reversed(keys)) or "<top level>"


def _ordered(config: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys whose lower bound exceeds their upper bound (``ingest.min_length`` > ``ingest.max_length``)."""
    problems = []
    for section, low, high in _ORDERED:
        sub = config if prefix == section else config.get(section)
        if not isinstance(sub, dict):
            continue
        lo, hi = sub.get(low), sub.get(high)
        if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo > hi:
            problems.append(f"config keys '{section}.{low}' = {lo} and '{section}.{high}' = {hi}: expected {low} <= {high}")
    return problems


def _exclusive(config: dict[str, Any]) -> list[str]:
    """Settings that exclude each other: planning per checksum bucket and clustering."""
    ingest = config.get("ingest")
    if isinstance(ingest, dict) and ingest.get("bucket_digits") and ingest.get("redundancy", "none") != "none":
        return [
            f"config keys 'ingest.bucket_digits' = {ingest['bucket_digits']} and 'ingest.redundancy' = {ingest['redundancy']!r}: "
            "expected bucket_digits 0 with a redundancy other than none (clustering compares sequences of every bucket, so it plans in one job)"
        ]
    return []


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
        return f"config key '{key}' = {shorten(value)} is out of range: expected {_range(sub)}{hint}"
    if error.validator == "type":
        return (
            f"config key '{key}' = {shorten(value)} has the wrong type: expected {sub.get('type')}, "
            f"found {type(value).__name__}{hint}"
        )
    if error.validator == "enum":
        return f"config key '{key}' = {shorten(value)}: expected one of {sub.get('enum')}{hint}"
    if error.validator == "additionalProperties":
        known = sorted(sub.get("properties", {}))
        lines = []
        for extra in sorted(map(str, set(value) - set(known))):
            full = _clip(extra if key == "<top level>" else f"{key}.{extra}")
            close = difflib.get_close_matches(extra, known, n=1)
            guess = f" (did you mean '{close[0]}'?)" if close else ""
            lines.append(f"unknown config key '{full}'{guess}; known keys here: {', '.join(known)}")
        return "\n".join(lines[:_MAX_PROBLEMS] + ([f"... and {len(lines) - _MAX_PROBLEMS} more unknown keys"] if len(lines) > _MAX_PROBLEMS else []))
    return f"config key '{key}' = {shorten(value)}: {_clip(error.message)}{hint}"


def validate_config(config: dict[str, Any], schema_path: str | os.PathLike[str] = SCHEMA_PATH) -> dict[str, Any]:
    """Fill defaults into ``config`` (in place) and validate it against the schema.

    Raises
    ------
    ConfigError
        With one line per problem; ``key`` and ``value`` are those of the first.
    """
    finite = _sized(check_values(config))
    schema = load_schema(schema_path)
    fill_defaults(config, schema)
    _raise_errors(Draft202012Validator(schema).iter_errors(config), extra=finite + _ordered(config) + _exclusive(config))
    schema_order(config, schema)
    return config


def schema_order(instance: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Put the keys of ``instance`` and of every mapping in it in the schema's order (keys
    the schema does not name follow, sorted), in place.

    Snakemake compares a rule's params by their text, in which a mapping's key order
    shows: in this order, moving keys around in a config file changes no param, so it
    reruns no job.
    """
    props = schema.get("properties", {})
    keys = [k for k in props if k in instance] + sorted(k for k in instance if k not in props)
    items = [(k, instance.pop(k)) for k in keys]
    extra = schema.get("additionalProperties")
    for key, value in items:
        if isinstance(value, dict):
            sub = props.get(key, extra)
            schema_order(value, sub if isinstance(sub, dict) else {})
        instance[key] = value
    return instance


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
        raise ConfigError(f"unknown config section {shorten(name)}; known: {', '.join(schema['properties'])}", key=name)
    finite = _sized(check_values(section, name))
    sub = schema["properties"][name]
    filled = fill_defaults(copy.deepcopy(dict(section or {})), sub)
    _raise_errors(Draft202012Validator(sub).iter_errors(filled), prefix=name, extra=finite + _ordered(filled, name))
    return filled


def _sized(problems: list[str]) -> list[str]:
    """Raise at once for an oversized configuration (nothing else may walk it); return the rest."""
    if problems and not problems[0].startswith("config key"):
        raise ConfigError("invalid configuration:\n" + problems[0], key="<top level>")
    return problems


def _raise_errors(errors: Any, prefix: str = "", extra: list[str] | None = None) -> None:
    """One ConfigError listing the schema's errors and the ``extra`` problems (at most
    ``_MAX_PROBLEMS`` lines); ``key`` and ``value`` are those of the first."""
    errors = sorted(errors, key=lambda e: list(e.absolute_path))
    problems = [(_path(e, prefix), e.instance, _message(e, prefix)) for e in errors]
    problems += [(line.split("'")[1], None, line) for line in extra or []]
    if not problems:
        return
    lines = [text for _, _, text in problems[:_MAX_PROBLEMS]]
    if len(problems) > _MAX_PROBLEMS:
        lines.append(f"... and {len(problems) - _MAX_PROBLEMS} more problems")
    raise ConfigError("invalid configuration:\n" + "\n".join(lines), key=problems[0][0], value=problems[0][1])


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
