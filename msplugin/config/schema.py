"""configs/schema.json, generated from the key tables: a JSON Schema (draft 2020-12) of the format.

Editors and CI pipelines validate a file with it before msplugin sees it. It accepts every
form the loader accepts (numbers as digit strings, "on"/"off" booleans, mysqlnd_ms's server
shorthand); the rules that span several keys (weights covering every server, unique server
aliases, one load balancer last in an object-form chain, known character sets) are the
loader's alone, so ``msplugin check-config`` stays the authority.

    python -m msplugin.config.schema > configs/schema.json
"""

from __future__ import annotations

import json
import sys
from typing import Any, Final

from msplugin.config.check import FALSE_WORDS, INT_PATTERN, TRUE_WORDS
from msplugin.config.fields import (
    FAILOVER_FIELDS,
    GROUP_FIELDS,
    SECTIONS,
    SERVER_FIELDS,
    SERVER_OPTION_FIELDS,
    Field,
    Kind,
)
from msplugin.config.model import FILTER_NAMES, LOAD_BALANCERS

__all__ = ["build_schema", "main"]

Schema = dict[str, Any]
_SPACE: Final = r"\s*"
_NUMBER: Final = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?"
_NONBLANK: Final = r"\S"


def _ci(word: str) -> str:
    """*word* matched without regard to case: ECMA-262 patterns have no (?i) flag."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


def _words(words: frozenset[str]) -> str:
    return "|".join(_ci(w) for w in sorted(words))


def _int_schema(lo: int, hi: int | None) -> Schema:
    number: Schema = {"type": "integer", "minimum": lo}
    if hi is not None:
        number["maximum"] = hi
    return {"anyOf": [number, {"type": "string", "pattern": f"^{_SPACE}{INT_PATTERN}{_SPACE}$"}]}


def _seconds_schema(positive: bool, most: int | None) -> Schema:
    number: Schema = {"type": "number", "exclusiveMinimum" if positive else "minimum": 0}
    if most is not None:
        number["maximum"] = most
    return {"anyOf": [number, {"type": "string", "pattern": f"^{_SPACE}{_NUMBER}{_SPACE}$"}]}


def _boolean_schema() -> Schema:
    words = _words(TRUE_WORDS | FALSE_WORDS - {""})
    return {
        "anyOf": [
            {"type": "boolean"},
            {"enum": [0, 1]},
            {"type": "string", "pattern": f"^{_SPACE}({words})?{_SPACE}$"},
        ]
    }


def _string_schema(f: Field, nonempty: bool) -> Schema:
    text: Schema = {"type": "string"}
    if nonempty:
        text["pattern"] = _NONBLANK
    if f.secret:
        return text
    return {"anyOf": [text, {"type": "number"}]}  # mysqlnd_ms configs give numbers as text


def field_schema(f: Field) -> Schema:
    """The schema of one key's value, with its meaning and default as the description."""
    kind = f.kind
    if kind is Kind.BOOLEAN:
        out = _boolean_schema()
    elif kind is Kind.INTEGER:
        out = _int_schema(f.lo, f.hi)
    elif kind in (Kind.SECONDS, Kind.SECONDS0):
        out = _seconds_schema(kind is Kind.SECONDS, f.hi)
    elif kind is Kind.SECONDS_OR_OFF:
        off = {"type": "string", "pattern": f"^{_SPACE}({_words(frozenset({'off', 'false'}))}){_SPACE}$"}  # fmt: skip
        out = {"anyOf": [*_seconds_schema(False, None)["anyOf"], {"const": False}, off]}
    elif kind is Kind.CHOICE:
        out = {"enum": list(f.choices)}
    elif kind is Kind.ERROR_CODES:
        out = {"type": "array", "items": _int_schema(1, 65535)}
    elif kind is Kind.ALIASES:
        out = {"type": "array", "items": {"type": "string", "minLength": 1}}
    else:
        out = _string_schema(f, nonempty=kind is not Kind.STRING)
    default = "" if f.default is None or f.default == () else f" (default {f.default!r})"
    out["description"] = f"{f.doc}{default}"
    return out


def _object(fields: tuple[Field, ...], **extra: Any) -> Schema:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {f.key: field_schema(f) for f in fields},
        **extra,
    }


def _servers_schema() -> Schema:
    shorthand = {"type": "string", "pattern": rf"^[^:]+(:(/.*|{_SPACE}{INT_PATTERN}{_SPACE}))?$"}
    server = {"anyOf": [{"$ref": "#/$defs/server"}, shorthand]}
    return {
        "anyOf": [
            {"type": "array", "items": server},
            {"type": "object", "additionalProperties": server},
        ]
    }


def _filter_args() -> dict[str, Schema]:
    weights = {
        "type": "object",
        "additionalProperties": _int_schema(1, 65535),
        "description": "one entry per server of the group",
    }
    sticky = field_schema(Field("sticky", Kind.BOOLEAN, False, "keep the first pick"))
    callback = {"type": "string", "pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"}
    eventual = {
        "anyOf": [
            _boolean_schema(),
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {"age": _int_schema(0, None)},
            },
        ]
    }
    qos = {
        "type": "object",
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": False,
        "properties": {
            "strong_consistency": _boolean_schema(),
            "session_consistency": _boolean_schema(),
            "eventual_consistency": eventual,
        },
    }
    members = {"type": "array", "items": {"type": "string"}}
    node_group = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"master": members, "slave": members},
    }
    return {
        "random": {"properties": {"sticky": sticky, "weights": weights}},
        "roundrobin": {"properties": {"weights": weights}},
        "user": {"properties": {"callback": callback}},
        "user_multi": {"properties": {"callback": callback}},
        "least_connections": {"maxProperties": 0},
        "fastest_response": {"maxProperties": 0},
        "quality_of_service": qos,
        "node_groups": {"minProperties": 1, "additionalProperties": node_group},
    }


def _filters_schema() -> Schema:
    names = sorted(FILTER_NAMES)
    properties: dict[str, Schema] = {}
    for name, args in _filter_args().items():
        obj: Schema = {"type": "object", **args}
        if "properties" in args and name != "quality_of_service":
            obj["additionalProperties"] = False
        # PHP's json_encode writes an empty array for "no arguments".
        properties[name] = {"anyOf": [{"type": "array", "maxItems": 0}, obj]}
    # A name alone gives a filter no arguments: these two cannot do without.
    bare = [n for n in names if n not in ("quality_of_service", "node_groups")]
    chain = {
        "type": "array",
        "items": {"enum": bare},
        "contains": {"enum": sorted(LOAD_BALANCERS)},
        "minContains": 0,
        "maxContains": 1,
    }
    by_name = {"type": "object", "additionalProperties": False, "properties": properties}
    return {"anyOf": [chain, by_name], "description": "the filter chain; see MANUAL.md, 3"}


def _group_schema() -> Schema:
    properties: dict[str, Schema] = {
        "master": {**_servers_schema(), "description": "at least one server"},
        "slave": {**_servers_schema(), "description": "may be empty"},
        "filters": _filters_schema(),
    }
    properties.update({f.key: field_schema(f) for f in GROUP_FIELDS})
    for key, fields in SECTIONS.items():
        properties[key] = _object(fields)
    strategies = {"enum": list(FAILOVER_FIELDS[0].choices)}
    properties["failover"] = {"anyOf": [strategies, properties["failover"]]}
    gtid = properties["global_transaction_id_injection"]["properties"]
    gtid["check_for_gtid"] = {"type": "string", "pattern": "#GTID"}
    return {
        "type": "object",
        "required": ["master", "slave"],
        "additionalProperties": False,
        "properties": properties,
    }


def build_schema() -> Schema:
    """The JSON Schema of a configuration file."""
    server = _object(SERVER_FIELDS + SERVER_OPTION_FIELDS, required=["host"])
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "msplugin configuration (mysqlnd_ms plugin-config format)",
        "description": (
            "Each top-level key is a group name. Generated from msplugin/config/fields.py; "
            "msplugin check-config gives the authoritative verdict; see MANUAL.md."
        ),
        "type": "object",
        "minProperties": 1,
        "additionalProperties": {"$ref": "#/$defs/group"},
        "$defs": {"server": server, "group": _group_schema()},
    }


def render() -> str:
    """The text of configs/schema.json."""
    return json.dumps(build_schema(), indent=2) + "\n"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
