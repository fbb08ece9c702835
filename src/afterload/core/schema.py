"""Table shapes: which columns a binding's table has, from a JSON Schema or from the data.

The shape is checked against every document before anything reaches the destination, because
DuckDB converts silently where we want an error (``1.5`` into BIGINT rounds, ``true`` becomes
1). Checking is made cheap by remembering document *signatures* (property names and Python
value types): a signature seen once and found compatible needs no second look, so the common
case costs two tuple builds and a dict lookup per document.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from afterload.errors import AfterloadError

DOCUMENT_COLUMN = "flow_document"
PUBLISHED_COLUMN = "flow_published_at"
RESERVED = frozenset({DOCUMENT_COLUMN, PUBLISHED_COLUMN})

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT128_MIN, INT128_MAX = -(2**127), 2**127 - 1
EXACT_DOUBLE = 2**53
"""Every integer up to this magnitude is a DOUBLE exactly; past it, only some are."""


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


class LineProblem(Exception):
    """What is wrong with one line; the caller adds binding, file and line number."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(slots=True)
class Column:
    name: str
    type: ColumnType
    key: bool = False
    declared: bool = False
    """From the JSON Schema: its type is a promise, so a conflict is an error, never a widening."""


_PY_TYPE: dict[type, ColumnType] = {
    bool: ColumnType.BOOLEAN,
    int: ColumnType.BIGINT,
    float: ColumnType.DOUBLE,
    str: ColumnType.VARCHAR,
    dict: ColumnType.JSON,
    list: ColumnType.JSON,
}
_JSON_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    dict: "an object",
    list: "an array",
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

ValueCheck = Callable[[Any], None]
Signature = tuple[tuple[str, ...], tuple[type, ...]]
Plan = tuple[tuple[str, ...], tuple[tuple[str, ValueCheck], ...]]
"""A known signature's checks split for the fast path: BIGINT range names, other checks."""


def _check_timestamp(value: Any) -> None:
    if type(value) is not str:
        raise LineProblem(f"is {_JSON_NAMES.get(type(value), 'a value')}, not a date-time string")
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise LineProblem(f"{value!r} is not an ISO 8601 date-time") from None


def _check_date(value: Any) -> None:
    if type(value) is not str:
        raise LineProblem(f"is {_JSON_NAMES.get(type(value), 'a value')}, not a date string")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise LineProblem(f"{value!r} is not an ISO 8601 date") from None


def _check_int64(value: Any) -> None:
    if not INT64_MIN <= value <= INT64_MAX:
        raise LineProblem(f"{value} is out of range for BIGINT")


def _show(value: int) -> str:
    """An integer for a message: whole, or its ends and length when it is very long."""
    text = str(value)
    digits = text.lstrip("-")
    if len(digits) <= 48:
        return text
    return f"{text[: len(text) - len(digits) + 4]}…{digits[-4:]} ({len(digits)} digits)"


def _check_int128(value: Any) -> None:
    if not INT128_MIN <= value <= INT128_MAX:
        raise LineProblem(
            f"{_show(value)} is past the range of every integer column the destination has "
            "(HUGEINT holds -2^127 to 2^127-1)"
        )


def _check_unbounded(value: Any) -> None:
    """PostgreSQL's NUMERIC holds any integer the reader accepts."""


def _check_exact_double(value: Any) -> None:
    if type(value) is int and abs(value) > EXACT_DOUBLE and float(value) != value:
        raise LineProblem(f"{value} cannot be held exactly by its column DOUBLE")


class TableShape:
    """The columns of one table, grown and widened as documents are observed."""

    def __init__(
        self, binding: str, key: list[str], *, delta: bool, wide_ints: int | None = 128
    ) -> None:
        self.binding = binding
        self.delta = delta
        self.wide_ints = wide_ints
        """Bits of the destination's widest integer column (DuckDB 128; None: unbounded)."""
        self._check_wide = _check_int128 if wide_ints == 128 else _check_unbounded
        self.columns: dict[str, Column] = {}
        self._lower: dict[str, str] = {}
        self._ok: dict[Signature, tuple[tuple[str, ValueCheck], ...]] = {}
        self.plans: dict[Signature, Plan] = {}
        """Filled by :meth:`plan`; read directly by the scan, which cannot afford a call."""
        self.version = 0
        """Bumped on every change, so a destination knows when to look at its DDL again."""
        self.key = [_top_level(binding, p) for p in key]
        self.store_document = True
        """Whether the destination keeps each document whole in ``flow_document``."""
        for name in self.key:
            self._reserve(name)

    # -- building ---------------------------------------------------------------------------

    def _reserve(self, name: str) -> None:
        if name in RESERVED:
            raise SchemaError(f"{self.binding}: property {name!r} collides with afterload's column")

    def add(self, name: str, type_: ColumnType, *, declared: bool = False) -> None:
        self._reserve(name)
        other = self._lower.get(name.lower())
        if other is not None and other != name:
            raise LineProblem(
                f"property {name!r} and property {other!r} would be the same column "
                "(column names ignore case)"
            )
        self.columns[name] = Column(name, type_, key=name in self.key, declared=declared)
        self._lower[name.lower()] = name
        self.version += 1
        self._ok.clear()
        self.plans.clear()

    def widen(self, name: str, type_: ColumnType) -> None:
        self.columns[name].type = type_
        self.version += 1
        self._ok.clear()
        self.plans.clear()

    def snapshot(self) -> TableShape:
        """A copy that later observations cannot change, for a commit running in another thread."""
        copy = TableShape.__new__(TableShape)
        copy.binding, copy.delta, copy.key = self.binding, self.delta, list(self.key)
        copy.store_document = self.store_document
        copy.wide_ints, copy._check_wide = self.wide_ints, self._check_wide
        copy.columns = {n: replace(c) for n, c in self.columns.items()}
        copy._lower = dict(self._lower)
        copy._ok, copy.plans = {}, {}
        copy.version = self.version
        return copy

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
                return
            except LineProblem:
                pass  # the slow path decides: widen the column, or word the problem
        # A rejected document must leave no trace: its new properties must not become columns.
        version = self.version
        saved = ({n: replace(c) for n, c in self.columns.items()}, dict(self._lower))
        try:
            checks = self._observe_slow(doc)
            self._check_values(doc, checks)
        except LineProblem:
            if self.version != version:
                self.columns, self._lower = saved
                self.version += 1
                self._ok.clear()
                self.plans.clear()
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
            ints = tuple(name for name, check in checks if check is _check_int64)
            others = tuple((name, check) for name, check in checks if check is not _check_int64)
            # A HUGEINT check cannot be a plan's: the scan sees floats where orjson rounded.
            plan = self.plans[sig] = (ints, others)
        return plan

    def _observe_slow(self, doc: dict[str, Any]) -> tuple[tuple[str, ValueCheck], ...]:
        checks: list[tuple[str, ValueCheck]] = []
        for name, value in doc.items():
            if value is None:
                continue
            vtype = type(value)
            col = self.columns.get(name)
            if col is None:
                if name in RESERVED:
                    raise LineProblem(f"property {name!r} collides with afterload's column")
                inferred = _PY_TYPE.get(vtype, ColumnType.JSON)
                check: ValueCheck | None = None
                if inferred is ColumnType.BIGINT:
                    check = _check_int64
                    if not INT64_MIN <= value <= INT64_MAX:
                        inferred, check = ColumnType.HUGEINT, self._check_wide
                        try:
                            check(value)
                        except LineProblem as exc:
                            raise LineProblem(f"/{_escape(name)} {exc.reason}") from None
                self.add(name, inferred)
                if check is not None:
                    checks.append((name, check))
                continue
            try:
                check = self._accept(col, value)
            except LineProblem as exc:
                if exc.reason.startswith("/"):
                    raise
                raise LineProblem(f"/{_escape(name)} {exc.reason}") from None
            if check is not None:
                checks.append((name, check))
        return tuple(checks)

    def _accept(self, col: Column, value: Any) -> ValueCheck | None:
        """None if the value's type always fits; a per-value check if it fits by value."""
        vtype = type(value)
        ctype = col.type
        if ctype is ColumnType.TIMESTAMPTZ:
            _check_timestamp(value)
            return _check_timestamp
        if ctype is ColumnType.DATE:
            _check_date(value)
            return _check_date
        if vtype in _ACCEPTS[ctype]:
            if ctype is ColumnType.BIGINT:
                if INT64_MIN <= value <= INT64_MAX:
                    return _check_int64
                # Widening to a wider integer keeps every value, declared or inferred.
                self._check_wide(value)
                self.widen(col.name, ColumnType.HUGEINT)
                return self._check_wide
            if ctype is ColumnType.HUGEINT:
                self._check_wide(value)
                return self._check_wide
            if ctype is ColumnType.DOUBLE and vtype is int:
                _check_exact_double(value)
                return _check_exact_double
            return None
        if ctype is ColumnType.BIGINT and vtype is float:
            if not col.declared:
                self.widen(col.name, ColumnType.DOUBLE)
                return None
            if value.is_integer():
                return _check_integral
        raise LineProblem(
            f"/{_escape(col.name)} is {_JSON_NAMES.get(vtype, 'a value')} "
            f"but its column is {ctype.value}"
        )


def _check_integral(value: Any) -> None:
    if type(value) is float and not value.is_integer():
        raise LineProblem(f"{value!r} is not an integer but its column is BIGINT")
    if type(value) is float and abs(value) > EXACT_DOUBLE:
        raise LineProblem(
            f"{value!r} is written with a fraction or exponent and is too large to be read "
            "as an exact integer; write it as an integer"
        )


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _top_level(binding: str, pointer: str) -> str:
    parts = pointer.split("/")[1:]
    if len(parts) != 1:
        raise SchemaError(
            f"{binding}: key {pointer} is nested; keys must be top-level properties such as /id"
        )
    return parts[0].replace("~1", "/").replace("~0", "~")


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
) -> TableShape:
    shape = TableShape(binding, key, delta=delta, wide_ints=wide_ints)
    props = schema.get("properties")
    if not isinstance(props, Mapping):
        raise SchemaError(f"{binding}: the JSON Schema has no top-level properties")
    for name, spec in props.items():
        if not isinstance(spec, Mapping):
            raise SchemaError(f"{binding}: the JSON Schema of property {name!r} is not an object")
        if name in RESERVED:
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
