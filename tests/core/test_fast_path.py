"""The bulk line scan against the exact per-line path, and commits overlapping the next read."""

from __future__ import annotations

import io
import json
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from afterload.cli.run import run_materialization
from afterload.core.checkpoint import Checkpoint
from afterload.core.column_names import ColumnNames
from afterload.core.documents import DocumentError, DocumentParser
from afterload.core.jsonschema import shape_from_json_schema
from afterload.core.schema import LineProblem, TableShape
from afterload.core.transaction import BindingChanges
from afterload.destinations.base import DestinationError, Recovered, TableWrite
from afterload.ndjson.driver import NdjsonDriver
from tests.materialize_support import rows, write_config, write_lines

NAMES = ["id", "n", "s", "ts", "d", "x"]
SCHEMA = {
    "properties": {
        "id": {"type": "integer"},
        "n": {"type": "integer"},
        "s": {"type": "string"},
        "ts": {"type": "string", "format": "date-time"},
        "d": {"type": "string", "format": "date"},
        "x": {"type": "number"},
    }
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64]),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from([1.0, 2.5, -0.0]),
    st.text(max_size=3),
    st.sampled_from(["2025-01-01T00:00:00Z", "2025-13-01T00:00:00Z", "2025-01-01", "2025-02-30"]),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=2),
    st.dictionaries(st.text(max_size=2), scalars, max_size=2),
)


TYPICAL = {
    "id": st.integers(0, 3),
    "n": st.one_of(st.integers(-3, 3), st.sampled_from([2**63 - 1, 2**63, -(2**63) - 1, 3.0, 3.5])),
    "s": st.text(max_size=3),
    "ts": st.sampled_from(["2025-01-01T00:00:00Z", "2025-01-01T25:00:00Z", "2025-01-01", "x"]),
    "d": st.sampled_from(["2025-01-01", "2025-02-30", "2025-01-01T00:00:00Z", "01/02/2025"]),
    "x": st.one_of(st.integers(-3, 3), st.floats(-2, 2)),
}


def value_for(name: str) -> st.SearchStrategy[Any]:
    """Mostly what the column expects, sometimes not, so values near the rules are common."""
    typical = TYPICAL.get(name)
    return values if typical is None else st.one_of(typical, typical, typical, values)


@st.composite
def objects(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    names = draw(st.lists(st.sampled_from([*NAMES, "flow_document", "ID"]), unique=True))
    if draw(st.integers(0, 9)) and "id" not in names:
        names.insert(0, "id")  # most documents have a key
    for name in names:
        doc[name] = (
            draw(st.integers(0, 6)) if name == "id" and draw(st.booleans()) else draw(values)
        )
    if draw(st.integers(0, 7)) == 0:
        doc["_meta"] = {"op": draw(st.sampled_from(["d", "c", "u"]))}
    return doc


@st.composite
def streams(draw: st.DrawFn) -> list[bytes]:
    """Lines from a few templates, so signatures repeat (the scan's case) with varied values."""
    templates = draw(st.lists(objects(), min_size=1, max_size=4))
    junk = st.sampled_from(JUNK)
    lines = []
    for _ in range(draw(st.integers(0, 60))):
        if draw(st.integers(0, 9)) == 0:
            lines.append(draw(junk))
            continue
        doc = dict(draw(st.sampled_from(templates)))
        for name in list(doc):
            if draw(st.booleans()):
                doc[name] = draw(value_for(name))
        if "_meta" in doc:
            doc["_meta"] = {"op": draw(st.sampled_from(["d", "c"]))}
        lines.append(json.dumps(doc, separators=(",", ":")).encode())
    return lines


JUNK = [
    b"",
    b"  ",
    b"not json",
    b"[1]",
    b'"x"',
    b"null",
    b'{"id":1',
    b'{"id":"\xff"}',
    b'{"id":1e400}',
    b'{"id":1,"id":2}',
    b'{"id":1,"n":1,"n":"x"}',
    b'{"id":1,"\\u006e":1,"n":2}',
    b'{"id":2, "s" :"a","s": "b"}',
    b'{"id":1,"x":{"a":1,"a":2}}',
    b'{"id":1,"s":"a\\":b"}',
]
lines_and_chunks = st.tuples(streams(), st.lists(st.integers(1, 20), max_size=6))


def reference(
    parser: DocumentParser, chunks: list[list[bytes]], changes: BindingChanges
) -> list[tuple[int, int, str]]:
    """The per-line loop the runtime ran before the scan existed."""
    problems = []
    for c, lines in enumerate(chunks):
        for i, raw in enumerate(lines):
            if not raw:
                continue
            try:
                key, delete = parser.parse(raw)
            except LineProblem as exc:
                if not raw.isspace():
                    problems.append((c, i, exc.reason))
                continue
            changes.add(key, raw, delete)
    return problems


def fast(
    parser: DocumentParser, chunks: list[list[bytes]], changes: BindingChanges
) -> list[tuple[int, int, str]]:
    problems: list[tuple[int, int, str]] = []
    for c, lines in enumerate(chunks):
        parser.take(lines, changes, lambda i, reason, _raw, c=c: problems.append((c, i, reason)))  # type: ignore[misc]
    return problems


def split(lines: list[bytes], sizes: list[int]) -> list[list[bytes]]:
    chunks, at = [], 0
    for size in sizes:
        chunks.append(lines[at : at + size])
        at += size
    chunks.append(lines[at:])
    return chunks


def state(shape: TableShape, changes: BindingChanges) -> tuple[Any, ...]:
    columns = [(c.name, c.type, c.key, c.declared) for c in shape.ordered()]
    return (
        columns,
        list(changes.rows.items()),
        list(changes.deleted.items()),
        changes.appended,
        changes.documents,
        changes.bytes,
    )


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(lines_and_chunks, st.booleans(), st.booleans(), st.booleans())
def test_the_scan_accepts_and_rejects_exactly_what_the_per_line_path_does(
    data: tuple[list[bytes], list[int]], delta: bool, hard: bool, declared: bool
) -> None:
    lines, sizes = data
    chunks = split(lines, sizes)
    results = []
    for run in (reference, fast):
        if declared:
            shape = shape_from_json_schema("t", ["/id"], SCHEMA, delta=delta)
        else:
            shape = TableShape("t", ["/id"], delta=delta)
        parser = DocumentParser(shape, ["/id"], hard_delete=hard)
        changes = BindingChanges(delta=delta, hard_delete=hard)
        problems = run(parser, chunks, changes)
        results.append((problems, state(shape, changes)))
    assert results[0] == results[1]


def test_the_scan_takes_plain_lines_without_the_per_line_path() -> None:
    shape = TableShape("t", ["/id"], delta=False)
    parser = DocumentParser(shape, ["/id"], hard_delete=False)
    calls = []
    exact = parser.parse

    def counted(raw: bytes) -> tuple[object, bool]:
        calls.append(raw)
        return exact(raw)

    parser.parse = counted  # type: ignore[method-assign]
    lines = [b'{"id":%d,"n":%d}' % (i % 700, i) for i in range(1000)]
    lines[500] = b'{"id":1,"n":%d}' % 2**130
    problems: list[tuple[int, str]] = []
    changes = BindingChanges(delta=False, hard_delete=False)
    parser.take(lines, changes, lambda i, reason, raw: problems.append((i, reason)))
    assert calls == [lines[0], lines[500]]  # an unknown signature, then a value out of range
    assert problems == [
        (
            500,
            f"/n {2**130} is past the range of every integer column the destination has "
            "(HUGEINT holds -2^127 to 2^127-1)",
        )
    ]
    assert changes.documents == 999 and len(changes.rows) == 699  # id 500 only on line 500
    assert changes.rows[0] == b'{"id":0,"n":700}'


# -- commits overlapping the next read -------------------------------------------------------


class Recording:
    """A destination that takes its time and records what each commit saw."""

    name = "recording"
    stores_nul = True
    optional_document = True
    empty_names = True
    far_offsets = True
    column_names: ColumnNames | None = None
    wide_ints: int | None = 128

    def __init__(self, delay: float = 0.05, fail_at: int | None = None) -> None:
        self.delay, self.fail_at = delay, fail_at
        self.commits: list[dict[str, Any]] = []
        self.busy = threading.Lock()
        self.overlapped = False

    def open(self, materialization: str) -> Recovered:
        return Recovered(Checkpoint(), 1, None, 0)

    def columns(self, table: str) -> None:
        return None

    def commit(
        self, writes: list[TableWrite], checkpoint: Checkpoint, published_at: datetime
    ) -> None:
        if not self.busy.acquire(blocking=False):
            self.overlapped = True  # two commits at once: must never happen
            raise AssertionError("commits overlap")
        try:
            started = len(self.commits)
            time.sleep(self.delay)
            if self.fail_at == started:
                raise DestinationError("the commit failed: disk full")
            self.commits.append(
                {
                    "rows": sum(len(w.upserts) for w in writes),
                    "columns": [c.name for w in writes for c in w.shape.ordered()],
                    "offset": checkpoint.binding("orders").files["data/1.jsonl"].offset,
                }
            )
        finally:
            self.busy.release()

    def close(self) -> None:
        pass


ORDERS = {"source": "data/*.jsonl", "table": "orders", "key": ["/id"]}


def materializer(tmp_path: Path, destination: Recording, max_documents: int) -> Any:
    loaded = write_config(tmp_path, [ORDERS], transaction={"max_documents": max_documents})
    m = NdjsonDriver.for_config(loaded, destination)
    m.open()
    return m


def test_overlapped_commits_are_in_order_one_at_a_time_with_their_own_shape(
    tmp_path: Path,
) -> None:
    docs: list[Any] = [{"id": i} for i in range(10)] + [{"id": i, "late": i} for i in range(10)]
    write_lines(tmp_path / "data/1.jsonl", docs)
    dest = Recording()
    m = materializer(tmp_path, dest, 5)
    try:
        assert m.run_once() == 20
    finally:
        m.close()
    assert not dest.overlapped
    offsets = [c["offset"] for c in dest.commits]
    assert offsets == sorted(offsets) and len(offsets) == 4
    # The first commits' shapes were taken before the "late" column was read.
    assert [c["columns"] for c in dest.commits] == [["id"], ["id"], ["id", "late"], ["id", "late"]]
    assert m.core.transactions == 4


def test_a_bad_line_waits_for_the_commit_in_flight_which_stands(tmp_path: Path) -> None:
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1}, {"id": 2}, {"id": 3}, "oops"])
    dest = Recording(delay=0.3)
    m = materializer(tmp_path, dest, 2)
    try:
        with pytest.raises(DocumentError, match=r"orders: data/1\.jsonl:4: is not valid JSON"):
            m.run_once()
    finally:
        m.close()
    assert [c["rows"] for c in dest.commits] == [2]  # the first transaction, committed


def test_a_failed_commit_in_flight_is_the_error_raised(tmp_path: Path) -> None:
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1}, {"id": 2}, {"id": 3}, "oops"])
    dest = Recording(delay=0.3, fail_at=0)
    m = materializer(tmp_path, dest, 2)
    try:
        with pytest.raises(DestinationError, match="disk full"):
            m.run_once()
    finally:
        m.close()
    assert dest.commits == []


def test_a_scanned_document_after_a_hard_delete_of_its_key_brings_the_row_back() -> None:
    shape = TableShape("t", ["/id"], delta=False)
    parser = DocumentParser(shape, ["/id"], hard_delete=True)
    changes = BindingChanges(delta=False, hard_delete=True)
    lines = [b'{"id":1,"n":1}', b'{"id":1,"_meta":{"op":"d"}}', b'{"id":1,"n":2}']
    parser.take(lines, changes, lambda i, reason, raw: None)
    assert changes.upserts() == [b'{"id":1,"n":2}'] and changes.deletes() == []


REPEATS = [
    (b'{"id":1,"id":2}', "id"),
    (b'{"id":3,"n":1,"n":"x"}', "n"),
    (b'{"id":4,"\\u006e":1,"n":2}', "n"),  # the same name, spelled with an escape
    (b'{"id":5, "n" :1, "n"\t: 2}', "n"),
]
NOT_REPEATS = [
    b'{"id":6,"x":{"a":1,"a":2}}',  # nested: stored whole as JSON, as written
    b'{"id":7,"s":"a\\":b\\":c","n":1}',  # the text of a value looks like a name
    b'{"id":8,"l":[{"a":1},{"a":2}],"n":1}',
]


def test_a_repeated_property_name_is_a_bad_line_on_both_paths() -> None:
    """orjson keeps a repeated name's last value, DuckDB its first: such a line is refused."""
    shape = TableShape("t", ["/id"], delta=False)
    parser = DocumentParser(shape, ["/id"], hard_delete=False)
    for raw, name in REPEATS:
        with pytest.raises(LineProblem) as err:
            parser.parse(raw)
        assert (
            err.value.reason
            == f"has the property {name!r} twice; a document names each property once"
        )
    for raw in NOT_REPEATS:
        parser.parse(raw)
    # The scan stops at a repeated name even when the signature is known, and the exact path
    # words it; the other lines go through.
    lines = [b'{"id":%d,"n":%d}' % (i, i) for i in range(5)]
    lines[2] = b'{"id":9,"n":1,"n":2}'
    problems: list[tuple[int, str]] = []
    changes = BindingChanges(delta=False, hard_delete=False)
    parser.take(lines, changes, lambda i, reason, raw: problems.append((i, reason)))
    assert problems == [(2, "has the property 'n' twice; a document names each property once")]
    assert sorted(changes.rows) == [0, 1, 3, 4]


def test_duckdb_and_the_check_agree_on_repeated_names(tmp_path: Path) -> None:
    """End to end: a line with a repeated name is rejected, every other one lands as written."""
    loaded = write_config(
        tmp_path,
        [{"source": "data/*.jsonl", "table": "t", "key": ["/id"], "rejects": "rejects/t.jsonl"}],
    )
    write_lines(
        tmp_path / "data/1.jsonl",
        [raw.decode() for raw, _ in REPEATS] + [r.decode() for r in NOT_REPEATS],
    )
    code = run_materialization(loaded, once=True, console=Console(file=io.StringIO()))
    assert code == 0
    rejected = [json.loads(r) for r in (tmp_path / "rejects/t.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejected] == [1, 2, 3, 4]
    got = rows(tmp_path / "warehouse.duckdb", "SELECT id, n, flow_document FROM t ORDER BY id")
    assert [(i, n) for i, n, _ in got] == [(6, None), (7, 1), (8, 1)]
    assert [d for _, _, d in got] == [r.decode() for r in NOT_REPEATS]
