"""A binding's table shape from a JSON Schema file: each top-level property's declared type.

Declared types are promises (:attr:`Column.declared`): a document that breaks one is a bad line,
never a reason to widen the column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from afterload.core.column_names import ColumnNames
from afterload.core.schema import ColumnType, LineProblem, SchemaError, TableShape, reserved


def column_type_for(spec: Mapping[str, Any]) -> ColumnType:
    """The column for one property's JSON Schema, as the issue's table says."""
    types = spec.get("type")
    if types is None:
        return ColumnType.JSON
    names = [types] if isinstance(types, str) else list(types)
    names = [t for t in names if t != "null"]
    if set(names) == {"integer", "number"}:
        return ColumnType.DOUBLE
    if len(names) != 1:
        return ColumnType.JSON
    kind = names[0]
    if kind == "integer":
        return ColumnType.BIGINT
    if kind == "number":
        return ColumnType.DOUBLE
    if kind == "boolean":
        return ColumnType.BOOLEAN
    if kind == "string":
        fmt = spec.get("format")
        if fmt == "date-time":
            return ColumnType.TIMESTAMPTZ
        if fmt == "date":
            return ColumnType.DATE
        return ColumnType.VARCHAR
    return ColumnType.JSON


def shape_from_json_schema(
    binding: str,
    key: list[str],
    schema: Mapping[str, Any],
    *,
    delta: bool,
    wide_ints: int | None = 128,
    empty_names: bool = True,
    far_offsets: bool = True,
    column_names: ColumnNames | None = None,
) -> TableShape:
    shape = TableShape(
        binding,
        key,
        delta=delta,
        wide_ints=wide_ints,
        empty_names=empty_names,
        far_offsets=far_offsets,
        column_names=column_names,
    )
    props = schema.get("properties")
    if not isinstance(props, Mapping):
        raise SchemaError(f"{binding}: the JSON Schema has no top-level properties")
    for name, spec in props.items():
        if not isinstance(spec, Mapping):
            raise SchemaError(f"{binding}: the JSON Schema of property {name!r} is not an object")
        if reserved(name):
            raise SchemaError(f"{binding}: property {name!r} collides with afterload's column")
        try:
            shape.add(name, column_type_for(spec), declared=True)
        except LineProblem as exc:
            raise SchemaError(f"{binding}: {exc.reason}") from None
    return shape


TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")
"""JSON Schema's type names: any other (a typo such as ``strnig``) is refused, since it would
silently make its property a JSON column."""
_ONE = ("additionalProperties", "items", "not", "contains", "if", "then", "else")
_MANY = ("items", "prefixItems", "anyOf", "oneOf", "allOf")
_NAMED = ("properties", "patternProperties", "$defs", "definitions")


def _types(schema: Any, at: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Each ``type`` of ``schema`` and of the schemas inside it, with where it is."""
    if not isinstance(schema, Mapping):
        return
    if "type" in schema:
        yield at, schema["type"]
    for word in _ONE:
        yield from _types(schema.get(word), (*at, word))
    for word in _MANY:
        if isinstance(inner := schema.get(word), list):
            for i, item in enumerate(inner):
                yield from _types(item, (*at, word, str(i)))
    for word in _NAMED:
        if isinstance(inner := schema.get(word), Mapping):
            for name, item in inner.items():
                yield from _types(item, (*at, word, str(name)))


def _unknown_type(schema: Mapping[str, Any]) -> tuple[tuple[str, ...], str] | None:
    for at, declared in _types(schema, ()):
        names = declared if isinstance(declared, list) else [declared]
        for name in names:
            if not isinstance(name, str) or name not in TYPES:
                return at, name if isinstance(name, str) else json.dumps(name)
    return None


def _where(at: tuple[str, ...]) -> str:
    if len(at) == 2 and at[0] == "properties":
        return f"property {at[1]!r}"
    pointer = "/".join(p.replace("~", "~0").replace("/", "~1") for p in at)
    return f"the schema at /{pointer}" if at else "the top-level schema"


def _line(text: str, name: str) -> str:
    """``:N`` for the line of the first ``"type"`` naming ``name``, if the text spells it so."""
    token = re.escape(json.dumps(name))
    found = re.search(rf'"type"\s*:\s*(\[[^\]]*)?{token}', text)
    return f":{text.count(chr(10), 0, found.end()) + 1}" if found else ""


def load_json_schema(binding: str, path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except FileNotFoundError:
        raise SchemaError(f"{binding}: schema file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{binding}: cannot read schema file {path} ({exc})") from None
    if not isinstance(data, dict):
        raise SchemaError(f"{binding}: schema file {path} is not a JSON object")
    unknown = _unknown_type(data)
    if unknown is not None:
        at, name = unknown
        raise SchemaError(
            f"{binding}: {path}{_line(text, name)}: {_where(at)} has the type {name!r}, which "
            f"JSON Schema does not have (it has {', '.join(TYPES)})"
        )
    return data
