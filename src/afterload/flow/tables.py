"""One Open binding → the core's table shape and the rows the core's destinations write.

The core writes rows from JSON lines whose top-level properties are the columns. A Flow
binding names its columns by field (``keys`` and ``values`` of the field selection, whose
values arrive packed), and the document column holds the runtime's document, not the row.
So each Store becomes one line ``{field: value, …, "flow_document": doc}`` and the write is
marked ``embedded_document``: the destination takes the document column from that property.
Field names are the column names, nested pointers included (``a/b`` is one column).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from afterload.core import exactjson
from afterload.core.schema import DOCUMENT_COLUMN, ColumnType, LineProblem, TableShape
from afterload.flow.catalog import MaterializationBinding, Projection
from afterload.flow.config import ResourceConfig
from afterload.flow.errors import ProtocolError

#: Flow's types and string formats → afterload's column types (as Estuary's SQL connectors).
_SCALAR = {
    "integer": ColumnType.BIGINT,
    "number": ColumnType.DOUBLE,
    "boolean": ColumnType.BOOLEAN,
}
_FORMATS = {"date-time": ColumnType.TIMESTAMPTZ, "date": ColumnType.DATE}


def column_type(projection: Projection | None) -> ColumnType:
    """The column a projection gets: one scalar type → its column, anything else JSON."""
    if projection is None:
        return ColumnType.JSON
    types = [t for t in projection.inference.types if t != "null"]
    if types == ["integer", "number"] or types == ["number", "integer"]:
        return ColumnType.DOUBLE
    if len(types) != 1:
        return ColumnType.JSON
    kind = types[0]
    if kind == "string":
        fmt = projection.inference.string.format if projection.inference.string else ""
        return _FORMATS.get(fmt, ColumnType.VARCHAR)
    return _SCALAR.get(kind, ColumnType.JSON)


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


class ColumnTypes:
    """The destination's type rules for Validate (see :class:`.constraints.ColumnTypes`)."""

    def column_type(self, projection: Projection, field_config: Any) -> str:
        return column_type(projection).value

    def compatible(self, existing: str, proposed: str) -> bool:
        if existing == proposed or existing == ColumnType.JSON.value:
            return True
        widen = {ColumnType.BIGINT.value: {ColumnType.DOUBLE.value, ColumnType.HUGEINT.value}}
        if existing == ColumnType.HUGEINT.value and proposed == ColumnType.BIGINT.value:
            return True
        if existing == ColumnType.DOUBLE.value and proposed == ColumnType.BIGINT.value:
            return True
        return proposed in widen.get(existing, set())


class FlowTable:
    """One binding of an Open: its table, its shape, and how a Store becomes a row."""

    def __init__(
        self,
        index: int,
        binding: MaterializationBinding,
        resource: ResourceConfig,
        *,
        wide_ints: int | None,
        stores_nul: bool,
        empty_names: bool = True,
    ) -> None:
        self.index = index
        self.name = f"binding {index} ({binding.collection.name})"
        self.table = resource.table
        self.schema = resource.schema_
        self.delta = binding.delta_updates
        selection = binding.field_selection
        self.keys = list(selection.keys)
        self.values = list(selection.values)
        self.document = selection.document
        self.stores_nul = stores_nul
        if not self.keys:
            raise ProtocolError(f"{self.name}: the field selection has no key fields")
        by_field: Mapping[str, Projection] = {p.field: p for p in binding.collection.projections}
        self.shape = TableShape(
            self.name,
            ["/" + _escape(k) for k in self.keys],
            delta=self.delta,
            wide_ints=wide_ints,
            empty_names=empty_names,
        )
        for field in [*self.keys, *self.values]:
            if field == DOCUMENT_COLUMN:
                raise ProtocolError(f"{self.name}: field {field!r} collides with the document")
            try:
                self.shape.add(field, column_type(by_field.get(field)), declared=True)
            except LineProblem as exc:
                raise ProtocolError(f"{self.name}: field {field!r}: {exc.reason}") from None

    def row(self, key: Sequence[Any], values: Sequence[Any], doc: Any) -> bytes:
        """The row line of one Store; ProtocolError when it cannot be written as it is."""
        if len(key) != len(self.keys) or len(values) != len(self.values):
            raise ProtocolError(
                f"{self.name}: a Store packs {len(key)} keys and {len(values)} values, but the "
                f"field selection has {len(self.keys)} keys and {len(self.values)} values"
            )
        row: dict[str, Any] = dict(zip(self.keys, key, strict=True))
        row.update(zip(self.values, values, strict=True))
        try:
            self.shape.observe(row)
        except LineProblem as exc:
            raise ProtocolError(f"{self.name}: key {list(key)!r}: {exc.reason}") from None
        row[DOCUMENT_COLUMN] = doc if doc is not None else {}
        text = exactjson.dumps(row)
        if not self.stores_nul and "\\u0000" in text:
            raise ProtocolError(
                f"{self.name}: the document with key {list(key)!r} holds a NUL character "
                "(U+0000), which PostgreSQL cannot store"
            )
        return text.encode()

    def key_line(self, key: Sequence[Any]) -> bytes:
        """A row line holding only the key fields (for Loads)."""
        return exactjson.dumps(dict(zip(self.keys, key, strict=True))).encode()
