"""Validate and Apply: the unary requests, answered from the destination's catalog.

Validate reads each table's existing columns (read-only: a running connector is not
disturbed) so a field whose type conflicts is answered INCOMPATIBLE. Apply describes the
tables each binding will have; the DDL itself runs inside the first commit of each binding,
in the same destination transaction as its data, so a table is never half made.
"""

from __future__ import annotations

from pathlib import Path

from afterload.core.schema import DOCUMENT_COLUMN, PUBLISHED_COLUMN, ColumnType
from afterload.destinations.base import LockedError
from afterload.destinations.factory import open_status
from afterload.errors import AfterloadError
from afterload.flow.config import parse_endpoint, parse_resource
from afterload.flow.constraints import validate_binding
from afterload.flow.request import Apply, Validate
from afterload.flow.response import Validated
from afterload.flow.tables import ColumnTypes, FlowTable

_DB_TYPES = {
    "BIGINT": ColumnType.BIGINT,
    "HUGEINT": ColumnType.HUGEINT,
    "NUMERIC": ColumnType.HUGEINT,
    "DOUBLE": ColumnType.DOUBLE,
    "DOUBLE PRECISION": ColumnType.DOUBLE,
    "BOOLEAN": ColumnType.BOOLEAN,
    "VARCHAR": ColumnType.VARCHAR,
    "TEXT": ColumnType.VARCHAR,
    "TIMESTAMP WITH TIME ZONE": ColumnType.TIMESTAMPTZ,
    "DATE": ColumnType.DATE,
}


def existing_columns(
    config: object, base_dir: Path, tables: list[str]
) -> dict[str, dict[str, str]]:
    """table → {column: afterload type} for the tables that exist; {} when unreadable now."""
    try:
        reader = open_status(config, base_dir)  # type: ignore[arg-type]
    except (LockedError, AfterloadError):
        return {}
    if reader is None:
        return {}
    try:
        schema = getattr(reader, "schema", "main")
        quoted = str(schema).replace("'", "''")
        query = (
            "SELECT table_name, column_name, upper(data_type) FROM information_schema.columns "
            f"WHERE table_schema = '{quoted}'"
        )
        con = getattr(reader, "con", None) or getattr(reader, "conn", None)
        if con is None:
            return {}
        rows = con.execute(query).fetchall()
    finally:
        reader.close()
    found: dict[str, dict[str, str]] = {}
    for table, column, dtype in rows:
        if table in tables and column not in (DOCUMENT_COLUMN, PUBLISHED_COLUMN):
            found.setdefault(str(table), {})[str(column)] = _DB_TYPES.get(
                str(dtype), ColumnType.JSON
            ).value
    return found


def validated(request: Validate, base_dir: Path) -> Validated:
    """The Validated answer: a constraint for every projection of every binding."""
    endpoint = parse_endpoint(request.config)
    resources = [parse_resource(b.resource_config, i) for i, b in enumerate(request.bindings)]
    existing = existing_columns(endpoint.destination, base_dir, [r.table for r in resources])
    types = ColumnTypes()
    return Validated(
        bindings=[
            validate_binding(
                binding,
                resource,
                existing=existing.get(resource.table),
                types=types,
                last=request.last_materialization,
            )
            for binding, resource in zip(request.bindings, resources, strict=True)
        ]
    )


def applied_description(request: Apply) -> str:
    """One line per table: what it will hold and its columns (created at the first commit)."""
    endpoint = parse_endpoint(request.materialization.config)
    duck = endpoint.destination.duckdb is not None
    lines = []
    for i, binding in enumerate(request.materialization.bindings):
        table = FlowTable(
            i,
            binding,
            parse_resource(binding.resource_config, i),
            wide_ints=128 if duck else None,
            stores_nul=not duck,
            empty_names=not duck,
        )
        cols = ", ".join(f"{c.name} {c.type.value}" for c in table.shape.ordered())
        kind = "delta updates" if table.delta else f"primary key ({', '.join(table.keys)})"
        lines.append(
            f"CREATE TABLE IF NOT EXISTS {table.table} ({cols}, {DOCUMENT_COLUMN} JSON, "
            f"{PUBLISHED_COLUMN} TIMESTAMPTZ; {kind})"
        )
    return "\n".join(lines)
