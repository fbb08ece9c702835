"""How afterload's names and types are spelled in PostgreSQL: identifiers past 63 bytes,
quoting, the column types, and the column comments that keep a property's real name."""

from __future__ import annotations

import hashlib

import orjson

from afterload.core.schema import ColumnType
from afterload.core.values import LineProblem

MAX_IDENTIFIER_BYTES = 63
"""PostgreSQL's NAMEDATALEN - 1: longer names are cut by the server without an error."""


_HASH_CHARS = 8


_COLUMN_COMMENT = "afterload: document property "


PG_TYPES: dict[ColumnType, str] = {
    ColumnType.BIGINT: "BIGINT",
    ColumnType.HUGEINT: "NUMERIC",
    ColumnType.DOUBLE: "DOUBLE PRECISION",
    ColumnType.BOOLEAN: "BOOLEAN",
    ColumnType.VARCHAR: "TEXT",
    ColumnType.TIMESTAMPTZ: "TIMESTAMPTZ",
    ColumnType.DATE: "DATE",
    ColumnType.JSON: "JSONB",
}


FROM_PG: dict[str, ColumnType] = {
    "bigint": ColumnType.BIGINT,
    "integer": ColumnType.BIGINT,
    "smallint": ColumnType.BIGINT,
    "numeric": ColumnType.HUGEINT,  # integers past 64 bits
    "double precision": ColumnType.DOUBLE,
    "real": ColumnType.DOUBLE,
    "boolean": ColumnType.BOOLEAN,
    "text": ColumnType.VARCHAR,
    "character varying": ColumnType.VARCHAR,
    "timestamp with time zone": ColumnType.TIMESTAMPTZ,
    "date": ColumnType.DATE,
    "jsonb": ColumnType.JSON,
    "json": ColumnType.JSON,
}


def pg_identifier(name: str) -> str:
    """The column or table name PostgreSQL holds for ``name``.

    A name of at most 63 bytes (UTF-8) without NUL characters is kept as it is. Any other name
    (too long, empty, or containing NUL) becomes its first bytes, cut at a character boundary so
    that the result is at most 63 bytes, then ``_`` and the first 8 hex digits of the SHA-256
    of the whole name: stable across runs, readable, and distinct for distinct names (two
    names that still meet are reported as an error by the caller).
    """
    raw = name.encode()
    if raw and len(raw) <= MAX_IDENTIFIER_BYTES and b"\x00" not in raw:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:_HASH_CHARS]
    head = raw.replace(b"\x00", b"")[: MAX_IDENTIFIER_BYTES - _HASH_CHARS - 1]
    return head.decode("utf-8", errors="ignore") + "_" + digest


SYSTEM_COLUMNS = frozenset({"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"})
"""Names every table has already; quoted names are exact, so ``XMIN`` is free."""


class PostgresColumnNames:
    """:class:`~afterload.core.column_names.ColumnNames` for PostgreSQL."""

    @staticmethod
    def column(prop: str) -> str:
        physical = pg_identifier(prop)
        if physical in SYSTEM_COLUMNS:
            raise LineProblem(
                f"property {prop!r} cannot be a column: PostgreSQL has a system column of "
                "that name in every table"
            )
        return physical

    @staticmethod
    def renamed(prop: str) -> str | None:
        raw = prop.encode()
        if not raw:
            why = "no column can have the empty name"
        elif b"\x00" in raw:
            why = "a column name cannot hold NUL"
        elif len(raw) > MAX_IDENTIFIER_BYTES:
            why = f"column names are at most {MAX_IDENTIFIER_BYTES} bytes"
        else:
            return None
        return f"PostgreSQL stores {prop!r} as {pg_identifier(prop)!r}: {why}"


COLUMN_NAMES = PostgresColumnNames()


def pointer(name: str) -> str:
    return "/" + name.replace("~", "~0").replace("/", "~1")


def column_comment(prop: str) -> str:
    return _COLUMN_COMMENT + orjson.dumps(prop).decode()


def prop_from_comment(physical: str, comment: str | None) -> str:
    if comment and comment.startswith(_COLUMN_COMMENT):
        try:
            value = orjson.loads(comment[len(_COLUMN_COMMENT) :])
        except orjson.JSONDecodeError:
            return physical
        if isinstance(value, str) and pg_identifier(value) == physical:
            return value
    return physical
