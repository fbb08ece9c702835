"""Packed keys and values decode to the JSON values Flow packed: hostile values included."""

from __future__ import annotations

import base64
from typing import Any

import fdb.tuple  # type: ignore[import-untyped]
import pytest
from hypothesis import given
from hypothesis import strategies as st

from afterload.flow.errors import ProtocolError
from afterload.flow.tuples import pack, pack_b64, unpack, unpack_b64

text = st.text(alphabet=st.characters(codec="utf-8"))  # NUL, astral planes, combining marks
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)
elements = (
    scalars | st.lists(json_values, max_size=4) | st.dictionaries(text, json_values, max_size=4)
)


def same(a: Any, b: Any) -> bool:
    """Equal, with -0.0 and 0.0 told apart (the tuple codec keeps the sign)."""
    return repr(a) == repr(b)


@given(st.lists(elements, max_size=6))
def test_round_trip(values: list[Any]) -> None:
    assert same(unpack(pack(values)), values)
    assert same(unpack_b64(pack_b64(values)), values)


@given(st.lists(st.integers(min_value=-(2**300), max_value=2**300), min_size=1, max_size=4))
def test_huge_integers(values: list[int]) -> None:
    assert unpack(pack(values)) == values


def test_library_packing_matches_flow_element_codes() -> None:
    # Codes of the FoundationDB tuple layer, as Flow's Rust packer writes them.
    assert pack([None]) == b"\x00"
    assert pack([True, False]) == b"\x27\x26"
    assert pack([1]) == b"\x15\x01"
    assert pack(["a\x00b"]) == b"\x02a\x00\xffb\x00"
    assert pack([{"a": 1}]) == b'\x01{"a":1}\x00'
    assert pack([1.5])[0] == 0x21
    assert unpack(base64.b64decode("FQE=")) == [1]


def test_bytes_that_are_not_json_come_back_as_base64() -> None:
    raw = fdb.tuple.pack((b"\xff\x00binary",))
    assert unpack(raw) == [base64.b64encode(b"\xff\x00binary").decode()]
    assert unpack(fdb.tuple.pack((b'"just a string"',))) == [
        base64.b64encode(b'"just a string"').decode()
    ]


@pytest.mark.parametrize(
    "raw",
    [b"\x16\x01", b"\x99", fdb.tuple.pack(((1, 2),))],
)
def test_garbage_and_foreign_elements_are_refused(raw: bytes) -> None:
    with pytest.raises(ProtocolError, match="Store keyPacked"):
        unpack(raw, "Store keyPacked")


def test_bad_base64() -> None:
    with pytest.raises(ProtocolError, match="not valid base64"):
        unpack_b64("@@@", "Load keyPacked")
