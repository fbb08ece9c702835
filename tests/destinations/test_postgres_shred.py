"""The server shreds lines (``postgres/shred.py``) into exactly the values the Python encoder
stored before: hostile documents through the real destination, against that encoder's rows.

Needs the PostgreSQL of ``AFTERLOAD_TEST_POSTGRES`` (as ``test_postgres.py``)."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from afterload.core import exactjson
from afterload.core.checkpoint import Checkpoint
from afterload.core.documents import DocumentParser
from afterload.core.schema import ColumnType, LineProblem, TableShape
from afterload.destinations.base import TableWrite
from afterload.destinations.config import PostgresConfig
from afterload.destinations.postgres.connect import ConnectSettings
from afterload.destinations.postgres.destination import PostgresDestination
from afterload.destinations.postgres.dialect import pg_identifier
from afterload.destinations.postgres.encode import encoder, project
from afterload.destinations.sql import quote

DSN = os.environ.get("AFTERLOAD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Raw:
    """A JSON number spelled as given (``1e-400``, ``1.50``): what orjson would never write."""

    text: str


def dumps(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return (
        json.dumps(value, ensure_ascii=False) if isinstance(value, str) else exactjson.dumps(value)
    )


def old_encode_rows(lines: list[bytes], shape: TableShape, stamp: str, embedded: bool) -> bytes:
    """The Python COPY-text encoder the writer used before the server shredded lines."""
    plan = [(c.name, encoder(c.name, c.type)) for c in shape.ordered()]
    rows = []
    for raw in lines:
        doc = project(exactjson.loads(raw), shape.projections)
        values = ["\\N" if (v := doc.get(n)) is None else enc(v) for n, enc in plan]
        text = exactjson.dumps(doc["flow_document"]) if embedded else raw.decode()
        values.append(text.replace("\\", "\\\\").replace("\t", "\\t").replace("\r", "\\r"))
        rows.append("\t".join(values) + "\t" + stamp + "\n")
    return "".join(rows).encode()


# -- documents -------------------------------------------------------------------------------

TEXT = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")
    | st.sampled_from(["\\", "\t", "\r", "\n", '"', "'", "N", ".", "é", "𝄞", "\u2028"]),
    max_size=12,
) | st.sampled_from(["", "\\N", "\\.", "\\\\", "\\t"])
INT64 = st.integers(-(2**63), 2**63 - 1)
HUGE = st.integers(-(10**60), 10**60) | st.integers(-(2**200), 2**200) | INT64
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
ODD_DOUBLES = st.sampled_from(
    [
        "1e-400",
        "-1e-400",
        "2.4703282292062328e-324",
        "2.4703282292062327e-324",
        "5e-324",
        "1.50",
        "1E2",
        "-0.0",
        "0.1000000000000000055511151231257827",
        "1.7976931348623157e308",
        "9007199254740993",
        "1" + "0" * 300,
        "0." + "0" * 310 + "1",
    ]
).map(Raw)
DOUBLES = FLOATS | st.integers(-(2**53), 2**53) | ODD_DOUBLES
# A declared BIGINT column takes integral numbers written as floats; Python reads them.
INTEGRAL = (
    INT64
    | st.integers(-(2**53), 2**53).map(lambda i: Raw(f"{i}.0"))
    | st.sampled_from(["1e3", "-0.0", "1e-400", "9007199254740992.9", "4.0000000000000000001"]).map(
        Raw
    )
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | HUGE | FLOATS | TEXT | ODD_DOUBLES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=12,
)
# PostgreSQL refuses offsets past ±15:59 (so did the Python encoder's rows).
OFFSETS = st.integers(-15 * 60 - 59, 15 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
TIMES = st.builds(
    lambda d, tz, sep, spec: d.replace(tzinfo=tz).isoformat(sep=sep, timespec=spec),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.none() | OFFSETS | st.just(UTC),
    st.sampled_from(["T", " "]),
    st.sampled_from(["auto", "hours", "minutes", "seconds", "milliseconds", "microseconds"]),
) | st.sampled_from(["2011-W01-2T00:05:23", "20111104T000523Z", "2011-11-04T00:05:23.283999999"])
DATES = st.dates().map(lambda d: d.isoformat()) | st.sampled_from(["20111104", "2011-W01-2"])

COLUMNS: dict[str, tuple[ColumnType, st.SearchStrategy[Any]]] = {
    "big": (ColumnType.BIGINT, INT64),
    "dint": (ColumnType.BIGINT, INTEGRAL),
    "huge": (ColumnType.HUGEINT, HUGE),
    "dbl": (ColumnType.DOUBLE, DOUBLES),
    "flag": (ColumnType.BOOLEAN, st.booleans()),
    "s": (ColumnType.VARCHAR, TEXT),
    'it\'s \\ "x"': (ColumnType.VARCHAR, TEXT),
    "obj": (ColumnType.JSON, JSON_VALUES),
    "ts": (ColumnType.TIMESTAMPTZ, TIMES),
    "d": (ColumnType.DATE, DATES),
}


@st.composite
def documents(draw: st.DrawFn, key: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"k": {"id": key, "b/c": draw(TEXT)}}
    for name, (_, values) in COLUMNS.items():
        choice = draw(st.integers(0, 5))
        if choice == 0:
            continue  # absent
        doc[name] = None if choice == 1 else draw(values)
    return doc


def shape_for(temporal: bool) -> TableShape:
    # A nested composite key whose second part has a slash in its name (a projection).
    shape = TableShape("t", ["/k/id", "/k/b~1c"], delta=False, wide_ints=None)
    for name, (ctype, _) in COLUMNS.items():
        if temporal or ctype not in (ColumnType.TIMESTAMPTZ, ColumnType.DATE):
            shape.add(name, ctype, declared=True)
    return shape


# -- the destination -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> Iterator[str]:
    name = f"afterload_shred_{secrets.token_hex(5)}"
    yield name
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def accepted(shape: TableShape, docs: list[dict[str, Any]], embedded: bool) -> list[bytes]:
    """The lines the driver would let through (it checks each against the shape)."""
    lines = []
    # The driver's own parse: it also reads a declared integer's `2.0` as the integer it is.
    parser = DocumentParser(shape, ["/k/id", "/k/b~1c"], hard_delete=False, forbid_nul=True)
    for doc in docs:
        line = dumps(doc).encode()
        try:
            parser.parse(line)
        except LineProblem:
            continue
        if embedded:
            line = dumps({**doc, "flow_document": doc}).encode()
        lines.append(line)
    return lines


def canon(value: Any) -> Any:
    """JSON as Python reads it, numbers by value (``1e3`` is ``1000.0``), booleans apart."""
    if type(value) is bool or value is None or type(value) is str:
        return (type(value).__name__, value)
    if type(value) in (int, float):
        return ("number", Fraction(value))
    if type(value) is list:
        return tuple(canon(v) for v in value)
    return tuple(sorted((k, canon(v)) for k, v in value.items()))


def rows(conn: psycopg.Connection[Any], table: str, shape: TableShape) -> list[tuple[Any, ...]]:
    cols = []
    for c in shape.ordered():
        q = quote(pg_identifier(c.name))
        # Every column as PostgreSQL prints it (a DOUBLE's -0 is "-0": its sign must stay);
        # JSONB by value: the document's own number text (1.50) is kept where the encoder
        # wrote Python's (1.5).
        cols.append(f"{q}::text")
    cols += ["flow_document::text", "flow_published_at::text"]
    got = conn.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY 1, 2").fetchall()
    kinds = [c.type for c in shape.ordered()] + [ColumnType.JSON, ColumnType.VARCHAR]
    return [
        tuple(
            canon(exactjson.loads(v.encode())) if k is ColumnType.JSON and v is not None else v
            for k, v in zip(kinds, r, strict=True)
        )
        for r in got
    ]


@settings(
    max_examples=40,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # shrinking a DB round trip is slow
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data(), temporal=st.booleans(), embedded=st.booleans())
def test_server_shredded_rows_equal_the_python_encoder(
    schema: str, data: st.DataObject, temporal: bool, embedded: bool
) -> None:
    table = f"t_{secrets.token_hex(4)}"
    shape = shape_for(temporal)
    first = accepted(shape, [data.draw(documents(k)) for k in range(8)], embedded)
    # The second commit meets the keys of the first: the merge path.
    second = accepted(shape, [data.draw(documents(k)) for k in range(4, 12)], embedded)
    dest = PostgresDestination(_settings(schema))
    dest.open(table)
    try:
        for n, lines in enumerate([first, second]):
            if not lines:
                continue  # the materializer writes no binding whose documents were all bad
            snap = shape.snapshot()
            write = TableWrite("t", table, snap, lines, embedded_document=embedded)
            dest.commit([write], Checkpoint(driver={"n": n}), NOW)
    finally:
        dest.close()
    final: dict[tuple[Any, ...], bytes] = {}
    for line in first + second:
        doc = project(exactjson.loads(line), shape.projections)
        final[(doc["k/id"], doc["k/b/c"])] = line
    stamp = NOW.isoformat()
    qualified = f'"{schema}".{quote(table)}'
    ref = f'"{schema}".{quote(table + "_ref")}'
    names = [quote(pg_identifier(c.name)) for c in shape.ordered()]
    target = ", ".join([*names, "flow_document", "flow_published_at"])
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {ref} (LIKE {qualified})")
        with conn.cursor().copy(f"COPY {ref} ({target}) FROM STDIN") as copy:
            copy.write(old_encode_rows(list(final.values()), shape, stamp, embedded))
        new, want = rows(conn, qualified, shape), rows(conn, ref, shape)
    assert len(new) == len(want)
    names = [c.name for c in shape.ordered()] + ["flow_document", "flow_published_at"]
    for got, expected in zip(new, want, strict=True):
        differ = [(n, a, b) for n, a, b in zip(names, got, expected, strict=True) if a != b]
        assert not differ, differ


def _settings(schema: str) -> ConnectSettings:
    return ConnectSettings.from_config(
        PostgresConfig.model_validate({"dsn": DSN, "schema": schema})
    )
