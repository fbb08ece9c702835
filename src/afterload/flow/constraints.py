"""Validate's answer: a constraint for every projection, decided as Estuary's SQL connectors do.

Pure: the existing table comes in as a mapping column → type (None when there is no table)
and the destination's type rules as a :class:`ColumnTypes`, so this module never touches a
database and property tests can hit it directly.

The rules, per projection:

- a key location: LOCATION_REQUIRED for standard updates (merging by key needs every key
  column), LOCATION_RECOMMENDED for delta updates;
- the root document: LOCATION_REQUIRED for standard updates (Loads return it), and
  LOCATION_RECOMMENDED for delta updates; a second root projection is FIELD_FORBIDDEN;
- no types, or only ``null``: FIELD_FORBIDDEN;
- a field named like a column afterload writes itself (``flow_published_at``, which every
  collection projects from ``/_meta/uuid``; a non-root ``flow_document``): FIELD_FORBIDDEN;
- ``_meta/op``: LOCATION_RECOMMENDED; other ``_meta/…``: FIELD_OPTIONAL;
- one scalar type (nullable or not), or a string holding a number: LOCATION_RECOMMENDED;
- an object: FIELD_OPTIONAL; arrays and mixed types: LOCATION_RECOMMENDED, as Estuary's
  connectors answer them (the current protocol treats LOCATION_RECOMMENDED as optional);
- a field whose column exists with a type the new schema cannot use: INCOMPATIBLE, with a
  reason naming table, column and both types.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from afterload.core.schema import reserved
from afterload.errors import AfterloadError
from afterload.flow.catalog import Json, MaterializationBinding, MaterializationSpec, Projection
from afterload.flow.config import ResourceConfig
from afterload.flow.request import ValidateBinding
from afterload.flow.response import Constraint, ConstraintType, ValidatedBinding

_SCALARS = {"boolean", "integer", "number", "string"}


class InvalidBinding(AfterloadError):
    """A binding that cannot be materialized at all (not a per-field constraint)."""


class ColumnTypes(Protocol):
    """The destination's type rules, given by the destination (phase 2)."""

    def column_type(self, projection: Projection, field_config: Json) -> str:
        """The column type this projection would be created with, e.g. ``BIGINT``."""
        ...

    def compatible(self, existing: str, proposed: str) -> bool:
        """True when a column of type ``existing`` can take values of ``proposed``,
        as it is or after an automatic migration (e.g. BIGINT → DOUBLE)."""
        ...


def _non_null(projection: Projection) -> list[str]:
    return [t for t in projection.inference.types if t != "null"]


def _numeric_string(projection: Projection) -> bool:
    string = projection.inference.string
    return (
        _non_null(projection) == ["string"]
        and string is not None
        and string.format in ("integer", "number")
    )


def _c(kind: ConstraintType, reason: str) -> Constraint:
    return Constraint(type=kind, reason=reason)


def _placed(projection: Projection, delta_updates: bool) -> Constraint | None:
    """The constraint of a key, the root document or a column afterload writes itself."""
    if projection.is_primary_key:
        if delta_updates:
            return _c(ConstraintType.LOCATION_RECOMMENDED, "Key locations are recommended")
        return _c(
            ConstraintType.LOCATION_REQUIRED,
            "Every key location is required to merge documents by key",
        )
    if projection.is_root_document:
        if delta_updates:
            return _c(
                ConstraintType.LOCATION_RECOMMENDED,
                "The root document should usually be materialized",
            )
        return _c(ConstraintType.LOCATION_REQUIRED, "The root document must be materialized")
    if reserved(projection.field):
        # Every Flow collection projects /_meta/uuid as flow_published_at; afterload fills
        # that column itself (the commit time), and flow_document is the root document.
        return _c(
            ConstraintType.FIELD_FORBIDDEN,
            f"afterload writes the column {projection.field} itself",
        )
    return None


def base_constraint(projection: Projection, delta_updates: bool) -> Constraint:
    """The constraint of one projection on a new table (no existing columns)."""
    placed = _placed(projection, delta_updates)
    if placed is not None:
        return placed
    types = projection.inference.types
    if not types:
        return _c(ConstraintType.FIELD_FORBIDDEN, "Cannot materialize a field with no types")
    if types == ["null"]:
        return _c(
            ConstraintType.FIELD_FORBIDDEN,
            "Cannot materialize a field whose only possible type is null",
        )
    if projection.field == "_meta/op":
        return _c(
            ConstraintType.LOCATION_RECOMMENDED,
            "The operation type should usually be materialized",
        )
    if projection.field.startswith("_meta/"):
        return _c(ConstraintType.FIELD_OPTIONAL, "Metadata fields may be materialized")
    non_null = _non_null(projection)
    if (len(non_null) == 1 and non_null[0] in _SCALARS) or _numeric_string(projection):
        return _c(ConstraintType.LOCATION_RECOMMENDED, "The projection has a single scalar type")
    if non_null == ["object"]:
        return _c(ConstraintType.FIELD_OPTIONAL, "Object fields may be materialized")
    return _c(ConstraintType.LOCATION_RECOMMENDED, "This field is able to be materialized")


def _last_binding(
    path: list[str], last: MaterializationSpec | None
) -> MaterializationBinding | None:
    if last is None:
        return None
    for binding in last.bindings:
        if binding.resource_path == path:
            return binding
    return None


def _check_keys(binding: ValidateBinding) -> None:
    collection = binding.collection
    for projection in collection.projections:
        if not projection.is_primary_key:
            continue
        inference = projection.inference
        must = inference.exists == "MUST" and "null" not in inference.types
        if not must and inference.default is None:
            raise InvalidBinding(
                f"collection {collection.name}: key field {projection.field} may be absent "
                "or null, and has no default; a key must always have a value"
            )


def _table_name(path: list[str]) -> str:
    return ".".join(path)


def validate_binding(
    binding: ValidateBinding,
    resource: ResourceConfig,
    *,
    existing: Mapping[str, str] | None,
    types: ColumnTypes,
    last: MaterializationSpec | None = None,
) -> ValidatedBinding:
    """One Validate binding → its constraints, resource path and delta flag.

    ``existing`` is the table's columns (name → type) or None when the table does not
    exist; column names are the field names, as afterload creates them.
    """
    _check_keys(binding)
    delta = resource.delta_updates
    path = resource.resource_path
    previous = _last_binding(path, last)
    if previous is not None and previous.delta_updates and not delta:
        raise InvalidBinding(
            f"table {_table_name(path)}: a delta-updates binding cannot become standard "
            "updates; materialize into a new table"
        )
    if previous is not None and previous.backfill != binding.backfill:
        existing = None  # a backfill recreates the table: old columns do not constrain
    elif previous is not None and previous.collection.key != binding.collection.key:
        raise InvalidBinding(
            f"table {_table_name(path)}: the collection's key changed from "
            f"{previous.collection.key} to {binding.collection.key}; its rows were merged by "
            "the old key: backfill the binding to recreate the table"
        )
    constraints: dict[str, Constraint] = {}
    root_seen: str | None = None
    for projection in binding.collection.projections:
        constraint = base_constraint(projection, delta)
        if projection.is_root_document:
            wanted = previous.field_selection.document if previous is not None else ""
            if root_seen is not None and not delta:
                constraint = Constraint(
                    type=ConstraintType.FIELD_FORBIDDEN,
                    reason=f"The root document is already materialized as field {root_seen}",
                )
            elif wanted and wanted == projection.field and not delta:
                constraint = Constraint(
                    type=ConstraintType.FIELD_REQUIRED,
                    reason="This field is the document in the current materialization",
                )
            root_seen = root_seen or projection.field
        if (
            existing is not None
            and projection.field in existing
            and constraint.type is not ConstraintType.FIELD_FORBIDDEN
        ):
            have = existing[projection.field]
            need = types.column_type(projection, binding.field_config.get(projection.field))
            if not types.compatible(have, need):
                constraint = Constraint(
                    type=ConstraintType.INCOMPATIBLE,
                    reason=(
                        f"column {projection.field!r} of table {_table_name(path)} has type "
                        f"{have}, but the field's schema now needs {need}; backfill the "
                        "binding to recreate the table"
                    ),
                )
        constraints[projection.field] = constraint
    _fold_case(constraints)
    return ValidatedBinding(constraints=constraints, resource_path=path, delta_updates=delta)


_KEEP_FIRST = (ConstraintType.LOCATION_REQUIRED, ConstraintType.FIELD_REQUIRED)


def _fold_case(constraints: dict[str, Constraint]) -> None:
    """Fields whose names differ only in case would be one column (column names ignore
    case): one is kept — a required one if any, else the first — the others are forbidden.
    Before, both were recommended and Open refused the selection."""
    groups: dict[str, list[str]] = {}
    for field, constraint in constraints.items():
        if constraint.type is not ConstraintType.FIELD_FORBIDDEN:
            groups.setdefault(field.lower(), []).append(field)
    for fields in groups.values():
        if len(fields) < 2:
            continue
        keep = next((f for f in fields if constraints[f].type in _KEEP_FIRST), fields[0])
        for field in fields:
            if field != keep:
                constraints[field] = _c(
                    ConstraintType.FIELD_FORBIDDEN,
                    f"Its column would be the same as field {keep!r}'s (column names ignore case)",
                )
