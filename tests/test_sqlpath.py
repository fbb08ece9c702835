"""The SQL path against the exact path: whenever SQL takes a transaction, the exact path agrees.

Agreement means: the exact path finds no bad line, reaches the same table shape (names, types,
order), and keeps the same rows and deletes. When SQL declines, the exact path decides, so
declining is always correct; the test also counts that ordinary transactions are taken.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from afterload import sqlpath
from afterload.documents import DocumentParser
from afterload.schema import ColumnType, TableShape, shape_from_json_schema
from afterload.transaction import BindingChanges

NAMES = ["id", "a", "b", "é", "_meta", "A", ""]
ODD_TEXT = [
    b'{"id":1,"a":NaN}',
    b'{"id":1,"a":[1,]}',
    b'{"id":1,"a":1e400}',
    b'{"id":1,"a":"\\ud800"}',
    b'{"id":1,"a":"\xff"}',
    b'{"id":1,"a":1,"a":"x"}',
    b'{"id":1,"\\u0061":1,"a":2}',
    b'{"id":9223372036854775808}',
    b'{"id":1,"a":18446744073709551616}',
    b'{"id":-9223372036854775809}',
    b'{"id":1,"a":' + b"[" * 1100 + b"]" * 1100 + b"}",
    b'{"id":1,"a":"\\u0000"}',
    b'{"id":1.5}',
    b'{"id":true}',
    b'{"id":null}',
    b'{"a":1}',
    b"[1]",
    b"",
    b"   ",
    b'{"id":1} {"id":2}',
    b'{"id":1,"_meta":{"op":"u","op":"d"}}',
    b'{"id":1,"flow_document":1}',
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


@st.composite
def line(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(ODD_TEXT))
    doc: dict[str, object] = {}
    key = draw(st.one_of(st.integers(0, 5), st.integers(-(2**64), 2**64), st.text(max_size=2)))
    if draw(st.integers(0, 20)):
        doc["id"] = key
    for name in draw(st.lists(st.sampled_from(NAMES[1:]), max_size=3, unique=True)):
        if name == "_meta":
            doc[name] = draw(st.sampled_from([{"op": "d"}, {"op": "u"}, {"op": 1}, "d"]))
        else:
            doc[name] = draw(values)
    try:
        return orjson.dumps(doc)
    except TypeError:  # integers past 64 bits: written by hand
        return (
            "{" + ",".join(f"{orjson.dumps(k).decode()}:{_num(v)}" for k, v in doc.items()) + "}"
        ).encode()


def _num(value: object) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)


def exact(
    lines: list[bytes], shape: TableShape, *, delta: bool, hard_delete: bool
) -> tuple[list[str], list[tuple[str, ColumnType]], list[bytes], list[bytes]]:
    parser = DocumentParser(shape, ["/id"], hard_delete=hard_delete)
    changes = BindingChanges(delta=delta, hard_delete=hard_delete)
    problems: list[str] = []
    parser.take(lines, changes, lambda i, reason, raw: problems.append(reason))
    cols = [(c.name, c.type) for c in shape.ordered()]
    return problems, cols, changes.upserts(), changes.deletes()


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


taken = {"fast": 0, "all": 0}


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(line(), min_size=1, max_size=12),
    delta=st.booleans(),
    hard_delete=st.booleans(),
    known=st.booleans(),
)
def test_sql_path_agrees_with_exact_path(
    con: duckdb.DuckDBPyConnection,
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[bytes],
    delta: bool,
    hard_delete: bool,
    known: bool,
) -> None:
    def shape() -> TableShape:
        s = TableShape("t", ["/id"], delta=delta)
        if known:
            s.add("id", ColumnType.BIGINT)
            s.add("a", ColumnType.DOUBLE)
        return s

    work = tmp_path_factory.mktemp("sql")
    fast = sqlpath.take(con, work, lines, shape(), delta=delta, hard_delete=hard_delete)
    taken["all"] += 1
    if not fast.verdict.fast:
        return
    taken["fast"] += 1
    problems, cols, rows, deletes = exact(lines, shape(), delta=delta, hard_delete=hard_delete)
    assert problems == []
    assert fast.verdict.shape is not None
    assert [(c.name, c.type) for c in fast.verdict.shape.ordered()] == cols
    assert sorted(fast.rows) == sorted(_raw(rows, lines))
    assert sorted(fast.deletes) == sorted(_raw(deletes, lines))


def _raw(kept: list[bytes], lines: list[bytes]) -> list[bytes]:
    """The exact path keeps raw bytes; DuckDB's reader hands back the line it read."""
    return [k.strip(b" \r") for k in kept]


def test_ordinary_transactions_are_taken(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    lines = [orjson.dumps({"id": i % 7, "a": i * 0.5, "b": [i], "c": "x"}) for i in range(50)]
    lines.append(b'{"id":3,"_meta":{"op":"d"},"a":1}')
    fast = sqlpath.take(
        con, tmp_path, lines, TableShape("t", ["/id"], delta=False), delta=False, hard_delete=False
    )
    assert fast.verdict.fast, fast.verdict.reason
    assert len(fast.rows) == 7


@pytest.mark.parametrize("raw", ODD_TEXT[:11])
def test_each_odd_line_is_declined(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, raw: bytes
) -> None:
    """Each of these is read differently by orjson and DuckDB, or needs the exact path's word."""
    s = TableShape("t", ["/id"], delta=False)
    s.add("id", ColumnType.BIGINT)
    fast = sqlpath.take(con, tmp_path, [b'{"id":0}', raw], s, delta=False, hard_delete=False)
    assert not fast.verdict.fast


def test_date_time_values_are_checked(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    schema = {
        "properties": {"id": {"type": "integer"}, "t": {"type": "string", "format": "date-time"}}
    }
    good = [b'{"id":1,"t":"2025-01-02T03:04:05Z"}']
    for raw, ok in [
        (b'{"id":2,"t":"2025-01-02T03:04:05.123+02:00"}', True),
        (b'{"id":2,"t":"2025-02-30T00:00:00Z"}', False),
        (b'{"id":2,"t":"2025-01-02T24:00:00Z"}', False),
        (b'{"id":2,"t":"yesterday"}', False),
        (b'{"id":2,"t":5}', False),
    ]:
        shape = shape_from_json_schema("t", ["/id"], schema, delta=False)
        fast = sqlpath.take(con, tmp_path, [*good, raw], shape, delta=False, hard_delete=False)
        assert fast.verdict.fast is ok, raw


def test_nul_is_declined_where_the_destination_cannot_store_it(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    stage = tmp_path / "s.jsonl"
    longest = sqlpath.stage_lines(stage, [b'{"id":1,"a":"x\\u0000"}'])
    shape = TableShape("t", ["/id"], delta=False)
    assert sqlpath.check(con, stage, longest, shape, unchecked_deletes=False).fast
    assert not sqlpath.check(
        con, stage, longest, shape, unchecked_deletes=False, forbid_nul=True
    ).fast


def test_the_property_test_exercises_the_fast_path() -> None:
    """Runs after the property test in file order: a share of its transactions went fast."""
    if taken["all"]:
        assert taken["fast"] >= taken["all"] // 10, taken
