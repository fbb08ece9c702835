"""Rows shredded by the server: each line is sent to a one-column JSONB table as it is, and
one ``INSERT … SELECT`` casts its values into the columns.

Encoding each value in Python was about half of afterload's client time; the server parses
the line once (it stores it as ``flow_document`` anyway) and the casts below give the values
the driver checked (``core/documents.py``) exactly what the Python encoder gave them:

- integers by their text (``1.0`` or ``1e3`` in a declared integer column: the nearest
  double, as Python read it, then the integer); NUMERIC keeps every digit;
- doubles by their text, as Python reads it (correctly rounded), except that a number too
  small for a double is zero, not an error;
- TIMESTAMPTZ and DATE are the one exception: the driver took RFC 3339 only
  (``core/temporal.py``) and Python normalises them to the instant it read, sent beside the
  line, so that no difference between the two readings can reach the table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext

from afterload.core import exactjson
from afterload.core.exactjson import dumps
from afterload.core.schema import DOCUMENT_COLUMN, PUBLISHED_COLUMN, ColumnType, TableShape
from afterload.destinations.postgres.catalog import Table
from afterload.destinations.postgres.connect import Connection, sql_literal
from afterload.destinations.postgres.dialect import pointer
from afterload.destinations.postgres.encode import (
    BadValue,
    Encoder,
    encoder,
    has_nul_escape,
    project,
)
from afterload.destinations.sql import quote

LINES = "pg_temp._afterload_lines"
"""The staging table: ``j`` the line as JSONB, ``t0``… the normalised dates and times."""

_CHUNK_LINES = 4096

_TEMPORAL = (ColumnType.TIMESTAMPTZ, ColumnType.DATE)


def _tiny() -> str:
    """2^-1075, exactly: half the smallest double; no greater magnitude reads as zero."""
    with localcontext() as ctx:
        ctx.prec = 2000
        return format(Decimal(1) / Decimal(2**1075), "f")


_TINY = _tiny()


def _py_float(text: str) -> str:
    """SQL for a JSON number's text as a double, as Python reads it. A number that rounds to
    zero makes ``float8in`` fail; its text is at least 300 bytes long (``0.000…``)."""
    return (
        f"CASE WHEN octet_length({text}) < 300 OR abs({text}::numeric) > {_TINY} "
        f"THEN {text}::float8 WHEN starts_with({text}, '-') THEN '-0'::float8 "
        f"WHEN {text} IS NOT NULL THEN 0::float8 END"
    )


def _cast(ctype: ColumnType, v: str) -> str:
    """SQL turning ``v`` (the value's text, or JSONB for a JSON column) into the column's."""
    if ctype is ColumnType.BIGINT:
        return f"CASE WHEN strpos({v}, '.') = 0 THEN {v}::bigint ELSE ({_py_float(v)})::bigint END"
    if ctype is ColumnType.HUGEINT:
        return (
            f"CASE WHEN strpos({v}, '.') = 0 THEN {v}::numeric "
            f"ELSE ({_py_float(v)})::bigint::numeric END"
        )
    if ctype is ColumnType.DOUBLE:
        return _py_float(v)
    if ctype is ColumnType.BOOLEAN:
        return f"{v}::boolean"
    if ctype is ColumnType.TIMESTAMPTZ:
        return f"{v}::timestamptz"
    if ctype is ColumnType.DATE:
        return f"{v}::date"
    if ctype is ColumnType.JSON:
        return f"NULLIF({v}, 'null'::jsonb)"
    return v


@dataclass(slots=True)
class Shredder:
    """How one write's lines are staged and selected as rows of its table."""

    table: Table
    shape: TableShape
    names: list[str]
    embedded: bool
    temporal: list[tuple[str, Encoder]]
    """The TIMESTAMPTZ and DATE columns, normalised in Python (staged as ``t0``, ``t1``…)."""

    @classmethod
    def of(
        cls, table: Table, shape: TableShape, *, embedded: bool, lines: Sequence[bytes] = ()
    ) -> Shredder:
        names = [c.name for c in shape.ordered()]
        # JSONB has no negative zero: a DOUBLE column is read by Python too when a line may
        # hold one (rare: a cheap search finds none in most transactions).
        python = (*_TEMPORAL, ColumnType.DOUBLE) if _negative_zero(shape, lines) else _TEMPORAL
        temporal = [
            (n, encoder(n, shape.columns[n].type)) for n in names if shape.columns[n].type in python
        ]
        return cls(table, shape, names, embedded, temporal)

    def stage(self) -> str:
        defs = ["j jsonb", *(f"t{i} text" for i in range(len(self.temporal)))]
        return f"CREATE TEMP TABLE {LINES} ({', '.join(defs)}) ON COMMIT DROP"

    def chunks(self, lines: list[bytes]) -> Iterator[bytes]:
        """COPY text: each line escaped (backslash, tab, carriage return), then its times."""
        if self.temporal:
            yield from self._with_times(lines)
            return
        for start in range(0, len(lines), _CHUNK_LINES):
            chunk = b"\n".join(lines[start : start + _CHUNK_LINES]) + b"\n"
            if b"\\u0000" in chunk:
                for raw in lines[start : start + _CHUNK_LINES]:
                    self._refuse_nul(raw)
            yield _escape(chunk)

    def _refuse_nul(self, raw: bytes) -> None:
        """BadValue naming the property if the line holds a NUL character (the driver refuses
        such lines; this is the destination's own guard, as clear as the driver's)."""
        if b"\\u0000" not in raw or not has_nul_escape(raw.decode()):
            return
        doc = project(exactjson.loads(raw), self.shape.projections)
        for name in self.names:
            value = doc.get(name)
            if value is not None and "\\u0000" in dumps(value):
                where = pointer(name)
                raise BadValue(f"{where} has a NUL character, which PostgreSQL cannot store")
        raise BadValue("the document has a NUL character (\\u0000), which JSONB cannot store")

    def _with_times(self, lines: Iterable[bytes]) -> Iterator[bytes]:
        projections = self.shape.projections
        rows: list[bytes] = []
        for raw in lines:
            self._refuse_nul(raw)
            doc = exactjson.loads(raw)
            if projections:
                project(doc, projections)
            times = "\t".join(
                "\\N" if (v := doc.get(n)) is None else enc(v) for n, enc in self.temporal
            )
            rows.append(_escape(raw) + b"\t" + times.encode())
            if len(rows) >= _CHUNK_LINES:
                rows.append(b"")
                yield b"\n".join(rows)
                rows = []
        if rows:
            rows.append(b"")
            yield b"\n".join(rows)

    def select(self, conn: Connection, stamp: str, *, probe: int | None = None) -> str:
        """``SELECT`` of the rows (every column, the document, the commit time), or with
        ``probe`` of the key columns of the first ``probe`` lines; named as the columns are."""
        keys_only = probe is not None
        names = self.shape.key if keys_only else self.names
        temporal = {n: f"t{i}" for i, (n, _) in enumerate(self.temporal)}
        inner: list[str] = []
        outer: list[str] = []
        for i, name in enumerate(names):
            ctype = self.shape.columns[name].type
            col = f"c{i}"
            if name in temporal:
                inner.append(f"{temporal[name]} AS {col}")
            else:
                path = self.shape.projections.get(name, (name,))
                arrow = "->" if ctype is ColumnType.JSON else "->>"
                if len(path) == 1:
                    inner.append(f"j {arrow} {sql_literal(conn, path[0])} AS {col}")
                else:
                    parts = ", ".join(sql_literal(conn, p) for p in path)
                    inner.append(f"j {arrow.replace('-', '#')} ARRAY[{parts}]::text[] AS {col}")
            outer.append(f"{_cast(ctype, col)} AS {quote(self.table.columns[name].physical)}")
        if not keys_only:
            document = f"j -> {sql_literal(conn, DOCUMENT_COLUMN)}" if self.embedded else "j"
            inner.append(f"{document} AS doc")
            outer.append(f"doc AS {quote(DOCUMENT_COLUMN)}")
            outer.append(f"{sql_literal(conn, stamp)}::timestamptz AS {quote(PUBLISHED_COLUMN)}")
        # OFFSET 0 keeps the subquery: each value is looked up once, however often cast uses it.
        limit = "OFFSET 0" if probe is None else f"LIMIT {int(probe)}"
        return f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM {LINES} {limit}) s"


_NEGATIVE_ZERO = re.compile(rb"-0(?:\.0*)?(?:[eE][+-]?[0-9]+)?[\s,}\]]")
"""A number that is zero with a minus sign (or text that looks like one: then only slower)."""


def _negative_zero(shape: TableShape, lines: Sequence[bytes]) -> bool:
    if not any(c.type is ColumnType.DOUBLE for c in shape.columns.values()):
        return False
    return _NEGATIVE_ZERO.search(b"\n".join(lines)) is not None


def _escape(text: bytes) -> bytes:
    """COPY text format for JSON lines: backslash, tab and carriage return (a JSON line holds
    a tab or carriage return only as whitespace between tokens, never a newline)."""
    if b"\\" in text:
        text = text.replace(b"\\", b"\\\\")
    if b"\t" in text:
        text = text.replace(b"\t", b"\\t")
    if b"\r" in text:
        text = text.replace(b"\r", b"\\r")
    return text
