"""Nested key pointers (``/a/b``) are keys like any other: the column takes Estuary's projection
name (``a/b``), in DuckDB and PostgreSQL alike (issue 9; before, ``/a/b`` was refused).

The pure core (pointer → names → value) is hit by hypothesis with hostile names: empty, NUL,
non-ASCII, ``/`` and ``~`` inside names. The destinations get the same names end to end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from afterload.config import load_config
from afterload.core.documents import DocumentParser
from afterload.core.pointers import pointer_tokens, projection_name, resolve
from afterload.core.schema import LineProblem, SchemaError, TableShape
from afterload.pipeline import materialize
from tests.materialize_support import Warehouse, write_config, write_lines

HOSTILE = st.text(
    alphabet=st.sampled_from(["a", "B", "/", "~", "0", "1", "\x00", "é", "雪", " ", '"', "'"]),
    max_size=4,
)


def escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def pointer(path: list[str]) -> str:
    return "".join("/" + escape(name) for name in path)


def nest(path: list[str], value: Any) -> Any:
    for name in reversed(path):
        value = {name: value}
    return value


@given(st.lists(HOSTILE, min_size=1, max_size=4), st.integers() | st.text() | st.booleans())
def test_pointer_names_and_values_round_trip(path: list[str], value: Any) -> None:
    ptr = pointer(path)
    assert pointer_tokens(ptr) == tuple(path)
    doc = nest(path, value)
    assert resolve(doc, tuple(path)) == value
    shape = TableShape("t", [ptr], delta=False)
    assert shape.key == [projection_name(tuple(path))] == ["/".join(path)]
    parser = DocumentParser(shape, [ptr], hard_delete=False)
    if type(doc) is not dict:
        return
    key, delete = parser.parse(json.dumps(doc).encode())
    assert key == value and not delete
    assert shape.columns[shape.key[0]].key


@given(st.lists(HOSTILE, min_size=2, max_size=3), st.integers(), st.integers())
def test_composite_nested_keys_never_meet(path: list[str], a: int, b: int) -> None:
    ptr = pointer(path)
    shape = TableShape("t", [ptr, "/id"], delta=False)
    parser = DocumentParser(shape, [ptr, "/id"], hard_delete=False)
    first = parser.key_of({**nest(path, a), "id": 1})
    second = parser.key_of({**nest(path, b), "id": 1})
    assert (first == second) == (a == b)


def test_missing_null_and_float_nested_keys_are_bad_lines() -> None:
    shape = TableShape("t", ["/a/b"], delta=False)
    parser = DocumentParser(shape, ["/a/b"], hard_delete=False)
    for doc, reason in [
        ({"a": {}}, "key /a/b is missing"),
        ({"a": 5}, "key /a/b is missing"),
        ({}, "key /a/b is missing"),
        ({"a": {"b": None}}, "key /a/b is null"),
        ({"a": {"b": 1.5}}, "key /a/b must be an integer, string or boolean"),
        ({"a": {"b": [1]}}, "key /a/b is an array"),
    ]:
        with pytest.raises(LineProblem, match=reason):
            parser.parse(json.dumps(doc).encode())
    parser.parse(b'{"a": {"b": 7}}')
    with pytest.raises(LineProblem, match=r"^/a/b is a string but its column is BIGINT"):
        parser.parse(b'{"a": {"b": "x"}}')
    with pytest.raises(LineProblem, match="same column as key /a/b"):
        parser.parse(b'{"a": {"b": 8}, "a/b": 1}')


def test_keys_that_would_share_a_column_or_overlap() -> None:
    with pytest.raises(SchemaError, match="would be the same column 'a/b'"):
        TableShape("t", ["/a/b", "/a~1b"], delta=False)
    with pytest.raises(SchemaError, match="overlap"):
        TableShape("t", ["/a", "/a/b"], delta=False)


# -- end to end, both destinations --------------------------------------------------------


def _run(tmp_path: Path, warehouse: Warehouse, key: list[str], docs: list[Any]) -> None:
    write_lines(tmp_path / "data" / "1.jsonl", docs)
    binding = {"source": "data/*.jsonl", "table": "t", "key": key, "hard_delete": True}
    loaded = write_config(tmp_path, [binding], warehouse=warehouse)
    materialize(loaded, once=True)


def test_nested_key_end_to_end(tmp_path: Path, warehouse: Warehouse) -> None:
    docs = [
        {"order": {"id": 1, "n": "x"}, "v": 1},
        {"order": {"id": 2}, "v": 2},
        {"order": {"id": 1}, "v": 3},
        {"order": {"id": 3}, "v": 4},
        {"order": {"id": 3}, "_meta": {"op": "d"}},
    ]
    _run(tmp_path, warehouse, ["/order/id"], docs)
    assert warehouse.rows('SELECT "order/id", v FROM t ORDER BY 1') == [(1, 3), (2, 2)]
    # check passes it, with the same config run just used
    from typer.testing import CliRunner

    from afterload.cli import app

    result = CliRunner().invoke(app, ["check", str(tmp_path / "afterload.yaml")])
    assert result.exit_code == 0, result.output


def _names_for(warehouse: Warehouse) -> st.SearchStrategy[list[str]]:
    # PostgreSQL stores no NUL anywhere: such documents are bad lines there (tested elsewhere).
    names = HOSTILE.filter(lambda n: "\x00" not in n) if warehouse.kind == "postgres" else HOSTILE
    # The top-level property becomes a column of its own, and DuckDB has no empty identifier:
    # a property named "" is a limit of the destination, not of nested keys.
    first = names.filter(bool) if warehouse.kind == "duckdb" else names
    return st.tuples(first, st.lists(names, min_size=1, max_size=2)).map(lambda t: [t[0], *t[1]])


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_hostile_nested_names_in_both_destinations(
    tmp_path_factory: pytest.TempPathFactory, kind: str, data: st.DataObject
) -> None:
    tmp_path = tmp_path_factory.mktemp("nested")
    warehouse = Warehouse(kind, tmp_path)
    path = data.draw(_names_for(warehouse))
    column = "/".join(path)
    values = data.draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=5))
    docs = [nest(path, v) | {"seq": i} for i, v in enumerate(values)]
    try:
        _run(tmp_path, warehouse, [pointer(path)], docs)
        quoted = '"' + column.replace('"', '""') + '"'
        found = warehouse.rows(f"SELECT {quoted}, seq FROM t ORDER BY 1")
        last = {v: i for i, v in enumerate(values)}
        assert found == sorted(last.items())
    finally:
        warehouse.drop()


def test_nested_key_in_the_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("bindings: [{source: '-', table: t, key: ['/a/b', '/c~1d~0e']}]\n")
    assert load_config(path).config.bindings[0].key == ["/a/b", "/c~1d~0e"]
