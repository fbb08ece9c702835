"""Table shapes from JSON Schema and from data: types, growth, widening, conflicts."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from afterload.core.jsonschema import shape_from_json_schema
from afterload.core.schema import ColumnType, LineProblem, SchemaError, TableShape

T = ColumnType


def types(shape: TableShape) -> dict[str, ColumnType]:
    return {c.name: c.type for c in shape.ordered()}


def test_json_schema_types() -> None:
    schema = {
        "properties": {
            "id": {"type": "integer"},
            "amount": {"type": ["number", "null"]},
            "paid": {"type": "boolean"},
            "note": {"type": "string"},
            "at": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date"},
            "items": {"type": "array"},
            "addr": {"type": "object"},
            "mixed": {"type": ["string", "integer"]},
            "num": {"type": ["integer", "number"]},
            "any": {},
        }
    }
    shape = shape_from_json_schema("orders", ["/id"], schema, delta=False)
    assert types(shape) == {
        "id": T.BIGINT,
        "amount": T.DOUBLE,
        "paid": T.BOOLEAN,
        "note": T.VARCHAR,
        "at": T.TIMESTAMPTZ,
        "day": T.DATE,
        "items": T.JSON,
        "addr": T.JSON,
        "mixed": T.JSON,
        "num": T.DOUBLE,
        "any": T.JSON,
    }
    assert shape.columns["id"].key


def test_inference_adds_columns_and_widens_integers() -> None:
    shape = TableShape("orders", ["/id"], delta=False)
    shape.observe({"id": 1, "n": 2, "tags": [], "x": None})
    assert types(shape) == {"id": T.BIGINT, "n": T.BIGINT, "tags": T.JSON}
    shape.observe({"id": 2, "n": 2.5, "ok": True, "s": "x"})
    assert types(shape) == {
        "id": T.BIGINT,
        "n": T.DOUBLE,
        "tags": T.JSON,
        "ok": T.BOOLEAN,
        "s": T.VARCHAR,
    }
    shape.observe({"id": 3, "n": 7, "tags": "scalar in a JSON column is fine"})


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"id": 1, "s": 5}, "/s is an integer but its column is VARCHAR"),
        ({"id": 1, "n": "5"}, "/n is a string but its column is BIGINT"),
        ({"id": 1, "b": 1}, "/b is an integer but its column is BOOLEAN"),
        ({"id": 1, "n": True}, "/n is a boolean but its column is BIGINT"),
        ({"id": 1, "S": "x"}, "would be the same column"),
        ({"id": 1, "flow_document": 1}, "collides with afterload's column"),
        ({"id": 1, "FLOW_DOCUMENT": 1}, "collides with afterload's column"),
        ({"id": 1, "Flow_Published_At": 1}, "collides with afterload's column"),
        ({"id": 2**127}, "past the range of every integer column"),
        ({"id": 1, "h": 1.5}, "/h is a number but its column is HUGEINT"),
        ({"id": 1, "d": 2**53 + 1}, "/d 9007199254740993 cannot be held exactly by its column"),
    ],
)
def test_conflicts_are_errors(doc: dict[str, Any], message: str) -> None:
    shape = TableShape("orders", ["/id"], delta=False)
    shape.observe({"id": 1, "s": "x", "n": 1, "b": True, "h": 2**64, "d": 0.5})
    with pytest.raises(LineProblem, match=message):
        shape.observe(doc)


def test_declared_types_are_promises() -> None:
    schema = {
        "properties": {
            "id": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date"},
        }
    }
    shape = shape_from_json_schema("orders", ["/id"], schema, delta=False)
    shape.observe({"id": 1, "at": "2025-01-02T03:04:05Z", "day": "2025-01-02"})
    with pytest.raises(LineProblem, match="/id is a number but its column is BIGINT"):
        shape.observe({"id": 1.5})
    with pytest.raises(LineProblem, match="/at 'yesterday' is not an RFC 3339 date-time"):
        shape.observe({"id": 1, "at": "yesterday"})
    with pytest.raises(LineProblem, match="not a date string"):
        shape.observe({"id": 1, "day": 5})
    assert types(shape)["id"] is T.BIGINT


def test_bad_schemas() -> None:
    with pytest.raises(SchemaError, match="no top-level properties"):
        shape_from_json_schema("t", ["/id"], {"type": "object"}, delta=False)
    # Nested keys are supported (tests/core/test_nested_keys.py); overlapping ones are not.
    assert TableShape("t", ["/a/b"], delta=False).key == ["a/b"]
    with pytest.raises(SchemaError, match="overlap"):
        TableShape("t", ["/a", "/a/b"], delta=False)


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=5,
)


@given(st.lists(st.dictionaries(st.sampled_from("abcd"), values, max_size=4), max_size=20))
def test_an_accepted_document_stays_accepted(docs: list[dict[str, Any]]) -> None:
    """Growth and widening never make a document that was accepted before unacceptable."""
    shape = TableShape("t", [], delta=True)
    accepted = []
    for doc in docs:
        try:
            shape.observe(doc)
        except LineProblem:
            continue
        accepted.append(doc)
    for doc in accepted:
        shape.observe(doc)
