"""The combiner and the line parser: pure cores, checked with hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from afterload.core.documents import DocumentParser
from afterload.core.schema import LineProblem, TableShape
from afterload.core.transaction import BindingChanges

events = st.lists(
    st.tuples(st.integers(0, 5), st.binary(min_size=1, max_size=4), st.booleans()), max_size=40
)


@given(events, st.booleans())
def test_standard_updates_keep_the_last_event_per_key(
    evs: list[tuple[int, bytes, bool]], hard: bool
) -> None:
    changes = BindingChanges(delta=False, hard_delete=hard)
    last: dict[int, tuple[bytes, bool]] = {}
    for key, raw, delete in evs:
        changes.add(key, raw, delete)
        last[key] = (raw, delete)
    rows = sorted(raw for raw, d in last.values() if not (d and hard))
    gone = sorted(raw for raw, d in last.values() if d and hard)
    assert sorted(changes.upserts()) == rows
    assert sorted(changes.deletes()) == gone
    assert changes.documents == len(evs)


@given(events)
def test_delta_updates_append_everything_in_order(evs: list[tuple[int, bytes, bool]]) -> None:
    changes = BindingChanges(delta=True, hard_delete=True)
    for key, raw, delete in evs:
        changes.add(key, raw, delete)
    assert changes.upserts() == [raw for _, raw, _ in evs]
    assert changes.deletes() == []


def parser(key: list[str] | None = None, *, hard: bool = False) -> DocumentParser:
    key = key or ["/id"]
    return DocumentParser(TableShape("orders", key, delta=False), key, hard_delete=hard)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"id":1', "is not valid JSON"),
        (b"[1,2]", "is an array, not a JSON object"),
        (b'"x"', "is a string, not a JSON object"),
        (b'{"name":"x"}', "key /id is missing"),
        (b'{"id":null}', "key /id is null"),
        (b'{"id":{"a":1}}', "key /id is an object"),
        (b'{"id":"\xff"}', "is not valid UTF-8"),
    ],
)
def test_bad_lines_say_why(line: bytes, reason: str) -> None:
    with pytest.raises(LineProblem) as info:
        parser().parse(line)
    assert info.value.reason.startswith(reason)


def test_composite_keys_and_deletes() -> None:
    p = parser(["/a", "/b"])
    assert p.parse(b'{"a":1,"b":"x"}') == ((1, "x"), False)
    assert p.parse(b'{"a":1,"b":"x","_meta":{"op":"d"}}') == ((1, "x"), True)
    with pytest.raises(LineProblem, match="key /b is missing"):
        p.parse(b'{"a":1}')


def test_hard_deletes_are_not_held_to_the_shape() -> None:
    p = parser(hard=True)
    p.parse(b'{"id":1,"n":1}')
    assert p.parse(b'{"id":1,"n":"gone","_meta":{"op":"d"}}') == (1, True)
    soft = parser()
    soft.parse(b'{"id":1,"n":1}')
    with pytest.raises(LineProblem, match="/n is a string"):
        soft.parse(b'{"id":1,"n":"gone","_meta":{"op":"d"}}')
