"""Fuzzing the NDJSON path: any bytes either load or stop with one clear line, never half-way."""

from __future__ import annotations

import io
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from afterload.cli.run import run_materialization
from tests.materialize_support import rows, write_config

ORDERS = {"source": "data/*.jsonl", "table": "orders", "key": ["/id"]}
ERROR = re.compile(r"^error: orders: data/1\.jsonl:\d+: \S.*$")

documents = st.fixed_dictionaries(
    {"id": st.one_of(st.integers(-5, 5), st.text(max_size=3), st.none(), st.booleans())},
    optional={
        "v": st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=5)),
        "_meta": st.one_of(st.just({"op": "d"}), st.dictionaries(st.text(max_size=3), st.none())),
        "n": st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    },
).map(lambda d: json.dumps(d).encode())
lines = st.lists(
    st.one_of(
        documents,
        st.binary(max_size=30),
        st.sampled_from([b"", b"[]", b"null", b"\xff\xfe", b'{"id": 1', b'{"id": 1e999}']),
    ),
    max_size=12,
)


def load(data: bytes, *, rejects: bool) -> tuple[int, str, Path]:
    work = Path(tempfile.mkdtemp(prefix="afterload-fuzz-"))
    _made.append(work)
    (work / "data").mkdir()
    (work / "data" / "1.jsonl").write_bytes(data)
    binding = {**ORDERS, "rejects": "rejects.jsonl"} if rejects else ORDERS
    loaded = write_config(work, [binding])
    console = Console(file=io.StringIO(), record=True, width=10_000)
    code = run_materialization(loaded, once=True, console=console)
    return code, console.export_text(), work


_made: list[Path] = []


@pytest.fixture(autouse=True)
def _clean_up() -> Iterator[None]:
    yield
    while _made:
        shutil.rmtree(_made.pop(), ignore_errors=True)


def committed(work: Path) -> int:
    db = work / "warehouse.duckdb"
    if not db.exists() or not rows(db, "SELECT 1 FROM duckdb_tables() WHERE table_name = 'orders'"):
        return 0
    return int(rows(db, "SELECT count(*) FROM orders")[0][0])


@settings(max_examples=120, deadline=None)
@given(lines, st.booleans())
def test_any_bytes_load_or_stop_with_one_line(parts: list[bytes], newline: bool) -> None:
    data = b"\n".join(parts) + (b"\n" if newline else b"")
    code, text, work = load(data, rejects=False)
    assert "Traceback" not in text
    if code != 0:
        assert code == 1
        errors = [line for line in text.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and ERROR.match(errors[0]), text
        assert committed(work) == 0  # one transaction: the bad line kept all of it out


@settings(max_examples=120, deadline=None)
@given(lines)
def test_with_rejects_every_line_is_a_row_or_a_reject(parts: list[bytes]) -> None:
    data = b"\n".join(parts) + b"\n"
    code, text, work = load(data, rejects=True)
    assert code == 0, text
    path = work / "rejects.jsonl"
    entries = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    rejected = {e["line"] for e in entries}
    assert len(rejected) == len(entries)  # each bad line once
    assert all(e["source"] == "data/1.jsonl" and e["reason"] for e in entries)
    keys = set()
    for number, raw in enumerate(data.split(b"\n")[:-1], start=1):
        if number in rejected or not raw.strip():
            continue
        doc = json.loads(raw)  # accepted by afterload, so it is a JSON object with a key
        keys.add((type(doc["id"]).__name__, doc["id"]))
    assert committed(work) == len(keys)
