"""A binding's table shape from a JSON Schema file: each top-level property's declared type.

Declared types are promises (:attr:`Column.declared`): a document that breaks one is a bad line,
never a reason to widen the column.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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


def load_json_schema(binding: str, path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchemaError(f"{binding}: schema file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{binding}: cannot read schema file {path} ({exc})") from None
    if not isinstance(data, dict):
        raise SchemaError(f"{binding}: schema file {path} is not a JSON object")
    return data
