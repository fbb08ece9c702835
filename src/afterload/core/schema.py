"""Table shapes: which columns a binding's table has, from a JSON Schema or from the data.

The shape is checked against every document before anything reaches the destination, because
DuckDB converts silently where we want an error (``1.5`` into BIGINT rounds, ``true`` becomes
1). Checking is made cheap by remembering document *signatures* (property names and Python
value types): a signature seen once and found compatible needs no second look, so the common
case costs two tuple builds and a dict lookup per document.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from afterload.core.column_names import ColumnNames, physical_name
from afterload.core.pointers import escape as _escape
from afterload.core.pointers import key_columns, resolve
from afterload.core.values import (
    EXACT_DOUBLE,
    INT64_MAX,
    INT64_MIN,
    ValueCheck,
    check_date,
    check_doubleable,
    check_exact_double,
    check_int64,
    check_int128,
    check_timestamp,
    check_timestamp_near,
    check_unbounded,
    json_name,
)
from afterload.core.values import LineProblem as LineProblem
from afterload.errors import AfterloadError

DOCUMENT_COLUMN = "flow_document"
PUBLISHED_COLUMN = "flow_published_at"
RESERVED = frozenset({DOCUMENT_COLUMN, PUBLISHED_COLUMN})


def reserved(name: str) -> bool:
    """Whether a property would be one of afterload's own columns. Case is ignored, as column
    names ignore it: ``FLOW_DOCUMENT`` is DuckDB's ``flow_document``."""
    return name.lower() in RESERVED


EMPTY_NAME = "a property named '' (the empty name) cannot be a column: DuckDB has no empty names"


class ColumnType(StrEnum):
    BIGINT = "BIGINT"
    HUGEINT = "HUGEINT"
    """Integers past 64 bits, held exactly: DuckDB's HUGEINT, PostgreSQL's NUMERIC."""
    DOUBLE = "DOUBLE"
    BOOLEAN = "BOOLEAN"
    VARCHAR = "VARCHAR"
    TIMESTAMPTZ = "TIMESTAMPTZ"
    DATE = "DATE"
    JSON = "JSON"


class SchemaError(AfterloadError):
    """A JSON Schema file that cannot be turned into a table."""


@dataclass(slots=True)
class Column:
    name: str
    type: ColumnType
    key: bool = False
    declared: bool = False
    """From the JSON Schema: its type is a promise, so a conflict is an error, never a widening."""
    rounds: int | None = None
    """An integer this process stored in this BIGINT column that a DOUBLE would round: while
    there is one, the column cannot widen to DOUBLE (its value would change silently)."""


_PY_TYPE: dict[type, ColumnType] = {
    bool: ColumnType.BOOLEAN,
    int: ColumnType.BIGINT,
    float: ColumnType.DOUBLE,
    str: ColumnType.VARCHAR,
    dict: ColumnType.JSON,
    list: ColumnType.JSON,
}
# Which Python value types a column accepts without looking at the value.
_ACCEPTS: dict[ColumnType, frozenset[type]] = {
    ColumnType.BIGINT: frozenset({int}),
    ColumnType.HUGEINT: frozenset({int}),
    ColumnType.DOUBLE: frozenset({int, float}),
    ColumnType.BOOLEAN: frozenset({bool}),
    ColumnType.VARCHAR: frozenset({str}),
    ColumnType.TIMESTAMPTZ: frozenset(),
    ColumnType.DATE: frozenset(),
    ColumnType.JSON: frozenset({bool, int, float, str, dict, list}),
}

Signature = tuple[tuple[str, ...], tuple[type, ...]]
Plan = tuple[
    tuple[str, ...],
    tuple[str, ...],
    tuple[tuple[str, ValueCheck], ...],
    tuple[str, ...],
    tuple[str, ...],
]
"""A known signature's checks split for the fast path: BIGINT range names, names of BIGINT
columns that may still widen to DOUBLE (their integers past 2^53 leave it), other checks, the
names holding floats (orjson reads an integer past 64 bits as a float: the scan sends any float
of that size to the exact path), and the names holding objects or arrays (whose own property
names the scan counts when it looks for a repeated top-level name)."""


class TableShape:
    """The columns of one table, grown and widened as documents are observed."""

    def __init__(
        self,
        binding: str,
        key: list[str],
        *,
        delta: bool,
        wide_ints: int | None = 128,
        empty_names: bool = True,
        far_offsets: bool = True,
        column_names: ColumnNames | None = None,
    ) -> None:
        self.binding = binding
        self.delta = delta
        self.wide_ints = wide_ints
        """Bits of the destination's widest integer column (DuckDB 128; None: unbounded)."""
        self.empty_names = empty_names
        """Whether the destination can name a column ``""`` (PostgreSQL maps it, DuckDB cannot)."""
        self._check_wide = check_int128 if wide_ints == 128 else check_unbounded
        self._check_timestamp = check_timestamp if far_offsets else check_timestamp_near
        """A destination reading offsets up to 15:59 only (PostgreSQL) cannot take every
        date-time: judged here, per line, so that such a value is a bad line."""
        self.column_names = column_names
        """The destination's column names, when not the properties' own (PostgreSQL)."""
        self.columns: dict[str, Column] = {}
        self._lower: dict[str, str] = {}
        self._physical: dict[str, str] = {}
        """Each column's name in the destination, to the property it holds (with column_names)."""
        self._ok: dict[Signature, tuple[tuple[str, ValueCheck], ...]] = {}
        self.plans: dict[Signature, Plan] = {}
        """Filled by :meth:`plan`; read directly by the scan, which cannot afford a call."""
        self.version = 0
        """Bumped on every change, so a destination knows when to look at its DDL again."""
        try:
            columns = key_columns(key)
        except ValueError as exc:
            raise SchemaError(f"{binding}: {exc}") from None
        self.key = [name for name, _, _ in columns]
        self.pointers = {name: pointer for name, pointer, _ in columns}
        self.projections = {name: path for name, _, path in columns if len(path) > 1}
        """Nested key columns (Estuary's projection name, ``a/b``) and their paths."""
        self.nested = tuple(self.projections.items())
        self.store_document = True
        """Whether the destination keeps each document whole in ``flow_document``."""
        for name in self.key:
            self._reserve(name)
            try:
                self._physical_name(name)
            except LineProblem as exc:
                raise SchemaError(f"{binding}: key {self.pointers[name]}: {exc.reason}") from None

    # -- building ---------------------------------------------------------------------------

    def _reserve(self, name: str) -> None:
        if reserved(name):
            raise SchemaError(f"{self.binding}: property {name!r} collides with afterload's column")
        if not name and not self.empty_names:
            raise SchemaError(f"{self.binding}: {EMPTY_NAME}")

    def add(self, name: str, type_: ColumnType, *, declared: bool = False) -> None:
        if not name and not self.empty_names:
            raise LineProblem(EMPTY_NAME)
        self._reserve(name)
        other = self._lower.get(name.lower())
        if other is not None and other != name:
            raise LineProblem(
                f"property {name!r} and property {other!r} would be the same column "
                "(column names ignore case)"
            )
        physical = self._physical_name(name)
        self.columns[name] = Column(name, type_, key=name in self.key, declared=declared)
        self._lower[name.lower()] = name
        if physical is not None:
            self._physical[physical] = name
        self._changed()

    def _physical_name(self, name: str) -> str | None:
        return physical_name(self.column_names, self._physical, name)

    def _changed(self) -> None:
        """The columns changed: signatures found fine before must be looked at again."""
        self.version += 1
        self._ok.clear()
        self.plans.clear()

    def widen(self, name: str, type_: ColumnType) -> None:
        self.columns[name].type = type_
        self._changed()

    def snapshot(self) -> TableShape:
        """A copy that later observations cannot change, for a commit running in another thread."""
        copy = TableShape.__new__(TableShape)
        copy.binding, copy.delta, copy.key = self.binding, self.delta, list(self.key)
        copy.projections, copy.pointers = dict(self.projections), dict(self.pointers)
        copy.nested = self.nested
        copy.store_document = self.store_document
        copy.wide_ints, copy._check_wide = self.wide_ints, self._check_wide
        copy.empty_names, copy._check_timestamp = self.empty_names, self._check_timestamp
        copy.columns = {n: replace(c) for n, c in self.columns.items()}
        copy._lower, copy._physical = dict(self._lower), dict(self._physical)
        copy.column_names = self.column_names
        copy._ok, copy.plans = {}, {}
        copy.version = self.version
        return copy

    def adopt(self, other: TableShape) -> None:
        """Take the columns of ``other``, a :meth:`snapshot` of this shape grown since."""
        if other.columns == self.columns:
            return
        self.columns = {n: replace(c) for n, c in other.columns.items()}
        self._lower, self._physical = dict(other._lower), dict(other._physical)
        self._changed()

    def ordered(self) -> list[Column]:
        """Key columns first, then the others in the order they appeared."""
        cols = list(self.columns.values())
        return [c for c in cols if c.key] + [c for c in cols if not c.key]

    # -- checking ---------------------------------------------------------------------------

    def observe(self, doc: dict[str, Any]) -> None:
        """Check a document against the shape, growing or widening it; raises LineProblem."""
        sig = (tuple(doc), tuple(map(type, doc.values())))
        checks = self._ok.get(sig)
        if checks is not None:
            try:
                self._check_values(doc, checks)
                if all(_fits(self.columns.get(n), resolve(doc, p)) for n, p in self.nested):
                    return
            except LineProblem:
                pass  # the slow path decides: widen the column, or word the problem
        # A rejected document must leave no trace: its new properties must not become columns.
        version = self.version
        saved = (
            {n: replace(c) for n, c in self.columns.items()},
            dict(self._lower),
            dict(self._physical),
        )
        try:
            checks = self._observe_slow(doc)
            self._check_values(doc, checks)
        except LineProblem:
            if self.version != version:
                self.columns, self._lower, self._physical = saved
                self._changed()
            raise
        # A shape change clears the cache; this signature is now known to be fine.
        self._ok[sig] = checks

    @staticmethod
    def _check_values(doc: dict[str, Any], checks: tuple[tuple[str, ValueCheck], ...]) -> None:
        for name, check in checks:
            value = doc[name]
            if value is not None:
                try:
                    check(value)
                except LineProblem as exc:
                    raise LineProblem(f"/{_escape(name)} {exc.reason}") from None

    def plan(self, sig: Signature) -> Plan | None:
        """The checks of a signature already found compatible, or None if it is not known.

        Only a signature that :meth:`observe` accepted once is known, so a document with a
        known signature needs no more than the plan's value checks to be accepted.
        """
        plan = self.plans.get(sig)
        if plan is None:
            checks = self._ok.get(sig)
            if checks is None:
                return None
            inline = (check_int64, check_doubleable)
            ints = tuple(name for name, check in checks if check is check_int64)
            narrow = tuple(name for name, check in checks if check is check_doubleable)
            others = tuple((name, check) for name, check in checks if check not in inline)
            names, types = sig
            floats = tuple(n for n, t in zip(names, types, strict=True) if t is float)
            containers = tuple(n for n, t in zip(names, types, strict=True) if t in (dict, list))
            plan = self.plans[sig] = (ints, narrow, others, floats, containers)
        return plan

    def _observe_slow(self, doc: dict[str, Any]) -> tuple[tuple[str, ValueCheck], ...]:
        checks: list[tuple[str, ValueCheck]] = []
        for name, value in doc.items():
            if value is None:
                continue
            if name in self.projections:
                key = self.pointers[name]
                raise LineProblem(f"property {name!r} would be the same column as key {key}")
            check = self._take(name, f"/{_escape(name)}", value)
            if check is not None:
                checks.append((name, check))
        for name, path in self.projections.items():
            value = resolve(doc, path)
            if value is not None:
                self._take(name, self.pointers[name], value)  # checked here, never cached
        return tuple(checks)

    def _take(self, name: str, pointer: str, value: Any) -> ValueCheck | None:
        """Fit one value into its column, adding or widening it; the check its values need."""
        col = self.columns.get(name)
        if col is not None:
            try:
                return self._accept(col, value)
            except LineProblem as exc:
                problem = exc if exc.reason.startswith("/") else LineProblem(f"{pointer} {exc}")
                raise problem from None
        if reserved(name):
            raise LineProblem(f"property {name!r} collides with afterload's column")
        inferred = _PY_TYPE.get(type(value), ColumnType.JSON)
        check: ValueCheck | None = check_int64 if inferred is ColumnType.BIGINT else None
        if inferred is ColumnType.BIGINT and not INT64_MIN <= value <= INT64_MAX:
            inferred, check = ColumnType.HUGEINT, self._check_wide
            try:
                check(value)
            except LineProblem as exc:
                raise LineProblem(f"{pointer} {exc.reason}") from None
        self.add(name, inferred)
        if inferred is ColumnType.BIGINT:
            return self._int_check(self.columns[name], value)
        return check

    def _int_check(self, col: Column, value: int) -> ValueCheck:
        """The check of a BIGINT column's integers. An inferred column could widen to DOUBLE
        later: the first integer it takes that a DOUBLE would round is noted, which forbids
        that widening (``check_doubleable`` sends such integers here until then)."""
        if col.declared or col.key or col.rounds is not None:
            return check_int64
        if -EXACT_DOUBLE <= value <= EXACT_DOUBLE or float(value) == value:
            return check_doubleable
        col.rounds = value
        self._changed()
        return check_int64

    def _accept(self, col: Column, value: Any) -> ValueCheck | None:
        """None if the value's type always fits; a per-value check if it fits by value."""
        vtype = type(value)
        ctype = col.type
        if ctype is ColumnType.TIMESTAMPTZ:
            self._check_timestamp(value)
            return self._check_timestamp
        if ctype is ColumnType.DATE:
            check_date(value)
            return check_date
        if vtype in _ACCEPTS[ctype]:
            if ctype is ColumnType.BIGINT:
                if INT64_MIN <= value <= INT64_MAX:
                    return self._int_check(col, value)
                # Widening to a wider integer keeps every value, declared or inferred.
                self._check_wide(value)
                self.widen(col.name, ColumnType.HUGEINT)
                return self._check_wide
            if ctype is ColumnType.HUGEINT:
                self._check_wide(value)
                return self._check_wide
            if ctype is ColumnType.DOUBLE and vtype is int:
                check_exact_double(value)
                return check_exact_double
            return None
        if ctype is ColumnType.BIGINT and vtype is float:
            if not col.declared and col.rounds is not None:
                raise LineProblem(
                    f"is a number, but its column holds {col.rounds}, which a DOUBLE would "
                    "round, so the column cannot widen to DOUBLE"
                )
            if not col.declared:
                self.widen(col.name, ColumnType.DOUBLE)
                return None
            # A declared integer column's numbers with a fraction or an exponent were read from
            # their text by the parser (core/documents.py): a float reaching here is no integer.
        pointer = self.pointers.get(col.name) or f"/{_escape(col.name)}"
        raise LineProblem(f"{pointer} is {json_name(value)} but its column is {ctype.value}")


def _fits(col: Column | None, value: Any) -> bool:
    """Whether a nested key's value fits its column as it is (a signature says nothing of it)."""
    if value is None or col is None or col.type in (ColumnType.HUGEINT, ColumnType.DOUBLE):
        return value is None
    return type(value) in _ACCEPTS[col.type] and (
        col.type is not ColumnType.BIGINT or INT64_MIN <= value <= INT64_MAX
    )
