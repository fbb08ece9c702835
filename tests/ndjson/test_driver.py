"""run_materialization end to end: loads, resumes, errors, rejects, deletes, evolution.

The tests taking the ``warehouse`` fixture run against a real DuckDB file and against the real
PostgreSQL server alike: one suite, parametrized by destination.
"""

from __future__ import annotations

import io
import json
import logging
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from afterload import open_destination
from afterload.cli.run import run_materialization
from afterload.config import LoadedConfig
from afterload.core.stopper import Stopper
from afterload.ndjson.driver import NdjsonDriver
from afterload.ndjson.progress import Progress
from tests.materialize_support import Warehouse, rows, run_script, write_config, write_lines

ORDERS = {"source": "data/*.jsonl", "table": "orders", "key": ["/id"]}


def run_once(loaded: LoadedConfig) -> tuple[int, str]:
    console = Console(stderr=False, record=True, width=200, file=io.StringIO())
    code = run_materialization(loaded, once=True, console=console)
    return code, console.export_text()


def test_load_then_resume_without_duplicates(tmp_path: Path, warehouse: Warehouse) -> None:
    loaded = write_config(tmp_path, [ORDERS], warehouse=warehouse)
    write_lines(tmp_path / "data/1.jsonl", [{"id": i, "v": i} for i in range(5)])
    assert run_once(loaded)[0] == 0
    write_lines(tmp_path / "data/1.jsonl", [{"id": 0, "v": 100}], append=True)
    write_lines(tmp_path / "data/2.jsonl", [{"id": 9, "v": 9}])
    assert run_once(loaded)[0] == 0
    assert run_once(loaded)[0] == 0  # nothing new: nothing written twice
    assert warehouse.rows("SELECT id, v FROM orders ORDER BY id") == [
        (0, 100),
        (1, 1),
        (2, 2),
        (3, 3),
        (4, 4),
        (9, 9),
    ]
    assert warehouse.rows("SELECT transactions FROM _afterload_checkpoints") == [(2,)]
    doc = warehouse.rows("SELECT flow_document FROM orders WHERE id = 9")[0][0]
    assert json.loads(doc) == {"id": 9, "v": 9}


def test_a_bad_line_names_binding_file_and_line_and_earlier_commits_stand(
    tmp_path: Path, warehouse: Warehouse
) -> None:
    loaded = write_config(tmp_path, [ORDERS], warehouse=warehouse, transaction={"max_documents": 2})
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1}, {"id": 2}])
    write_lines(tmp_path / "data/2.jsonl", [{"id": 3}, {"name": "no id"}, {"id": 4}])
    code, text = run_once(loaded)
    assert code == 1
    assert "orders: data/2.jsonl:2: key /id is missing" in text
    assert "Traceback" not in text
    assert warehouse.rows("SELECT id FROM orders ORDER BY id") == [(1,), (2,)]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("not json", "is not valid JSON"),
        ("[1]", "is an array, not a JSON object"),
        ('{"id": 2, "v": "text"}', "/v is a string but its column is BIGINT"),
    ],
)
def test_bad_input_messages(tmp_path: Path, line: str, reason: str) -> None:
    loaded = write_config(tmp_path, [ORDERS])
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1, "v": 1}, line])
    code, text = run_once(loaded)
    assert code == 1 and f"orders: data/1.jsonl:2: {reason}" in text


def test_a_property_named_empty_is_a_bad_line_for_duckdb(tmp_path: Path) -> None:
    """DuckDB has no column named "": the line is worded with file and line (or rejected),
    never a failed commit that stops every binding."""
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1, "v": 1}, {"id": 2, "": "blank"}])
    code, text = run_once(write_config(tmp_path, [ORDERS]))
    assert code == 1
    assert "orders: data/1.jsonl:2: a property named '' (the empty name) cannot be a column" in text
    assert "Traceback" not in text and "commit failed" not in text
    loaded = write_config(tmp_path, [{**ORDERS, "rejects": "rejects/orders.jsonl"}])
    assert run_once(loaded)[0] == 0
    assert rows(tmp_path / "warehouse.duckdb", "SELECT id, v FROM orders") == [(1, 1)]
    lines = (tmp_path / "rejects/orders.jsonl").read_text().splitlines()
    (reject,) = [json.loads(x) for x in lines]
    assert reject["line"] == 2 and "empty name" in reject["reason"]


def test_a_property_named_empty_is_a_column_in_postgres(
    tmp_path: Path, warehouse: Warehouse
) -> None:
    if warehouse.kind != "postgres":
        pytest.skip("PostgreSQL maps the empty name; DuckDB refuses it (the test above)")
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1, "": "blank"}])
    assert run_once(write_config(tmp_path, [ORDERS], warehouse=warehouse))[0] == 0
    doc = warehouse.rows("SELECT flow_document FROM orders")[0][0]
    assert json.loads(doc) == {"id": 1, "": "blank"}


def test_invalid_utf8_empty_files_and_truncated_last_line(tmp_path: Path) -> None:
    loaded = write_config(tmp_path, [{**ORDERS, "rejects": "rejects/orders.jsonl"}])
    (tmp_path / "data").mkdir()
    (tmp_path / "data/0.jsonl").write_bytes(b"")
    (tmp_path / "data/1.jsonl").write_bytes(b'{"id":1}\n{"id":2,"s":"\xff"}\n\n{"id":3}\n{"id":4')
    assert run_once(loaded)[0] == 0
    db = tmp_path / "warehouse.duckdb"
    assert rows(db, "SELECT id FROM orders ORDER BY id") == [(1,), (3,)]
    rejects = [json.loads(x) for x in (tmp_path / "rejects/orders.jsonl").read_text().splitlines()]
    assert rejects == [
        {
            "source": "data/1.jsonl",
            "line": 2,
            "reason": "is not valid UTF-8",
            "document": '{"id":2,"s":"\ufffd"}',
        }
    ]
    with open(tmp_path / "data/1.jsonl", "ab") as f:
        f.write(b"}\n")
    assert run_once(loaded)[0] == 0
    assert rows(db, "SELECT id FROM orders ORDER BY id") == [(1,), (3,), (4,)]


def test_rejects_of_an_uncommitted_transaction_are_removed(tmp_path: Path) -> None:
    loaded = write_config(tmp_path, [{**ORDERS, "rejects": "rejects.jsonl"}])
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1}, "oops"])
    assert run_once(loaded)[0] == 0
    committed = (tmp_path / "rejects.jsonl").read_bytes()
    assert committed.count(b"\n") == 1
    # A crash after appending rejects but before the commit leaves extra lines behind.
    with open(tmp_path / "rejects.jsonl", "ab") as f:
        f.write(b'{"source":"data/1.jsonl","line":3,"reason":"uncommitted"}\n')
    write_lines(tmp_path / "data/1.jsonl", ["again"], append=True)
    assert run_once(loaded)[0] == 0
    lines = (tmp_path / "rejects.jsonl").read_text().splitlines()
    assert [json.loads(x)["line"] for x in lines] == [2, 3]
    assert "uncommitted" not in lines[1]


def test_hard_and_soft_deletes(tmp_path: Path, warehouse: Warehouse) -> None:
    hard = {"source": "hard.jsonl", "table": "hard", "key": ["/id"], "hard_delete": True}
    soft = {"source": "soft.jsonl", "table": "soft", "key": ["/id"]}
    loaded = write_config(tmp_path, [hard, soft], warehouse=warehouse)
    docs = [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]
    gone = {"id": 1, "_meta": {"op": "d"}}
    for name in ("hard", "soft"):
        write_lines(tmp_path / f"{name}.jsonl", docs)
    assert run_once(loaded)[0] == 0
    for name in ("hard", "soft"):
        write_lines(
            tmp_path / f"{name}.jsonl", [gone, {"id": 3, "v": "c"}, {**gone, "id": 3}], append=True
        )
    assert run_once(loaded)[0] == 0
    assert warehouse.rows("SELECT id FROM hard ORDER BY id") == [(2,)]
    assert warehouse.rows("SELECT id, v, _meta->>'op' FROM soft ORDER BY id") == [
        (1, None, "d"),
        (2, "b", None),
        (3, None, "d"),
    ]


def test_schema_file_and_delta_updates(tmp_path: Path, warehouse: Warehouse) -> None:
    schema = {
        "properties": {"id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}}
    }
    (tmp_path / "ev.schema.json").write_text(json.dumps(schema))
    binding = {
        "source": "ev.jsonl",
        "table": "events",
        "key": ["/id"],
        "delta_updates": True,
        "schema": "ev.schema.json",
    }
    loaded = write_config(tmp_path, [binding], warehouse=warehouse)
    write_lines(tmp_path / "ev.jsonl", [{"id": 1, "at": "2025-03-04T05:06:07Z"}, {"id": 1}])
    assert run_once(loaded)[0] == 0
    epoch = 'epoch("at")' if warehouse.kind == "duckdb" else 'extract(epoch from "at")'
    assert warehouse.rows(f"SELECT id, {epoch}::BIGINT FROM events ORDER BY 2 NULLS LAST") == [
        (1, 1741064767),
        (1, None),
    ]
    write_lines(tmp_path / "ev.jsonl", [{"id": 2, "at": "soon"}], append=True)
    code, text = run_once(loaded)
    assert code == 1 and "events: ev.jsonl:3: /at 'soon' is not an RFC 3339 date-time" in text


class StepClock:
    """Wall time that moves only when the runtime sleeps."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.now.timestamp()

    def wall(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:  # pragma: no cover - unused by the runtime
        self.now += timedelta(seconds=seconds)

    def step(self, seconds: float) -> None:
        self.now += timedelta(seconds=max(seconds, 0.05))


def test_sync_schedule_backfills_fast_then_waits_for_the_frequency(tmp_path: Path) -> None:
    loaded = write_config(
        tmp_path, [ORDERS], syncSchedule={"syncFrequency": "5m"}, transaction={"max_documents": 3}
    )
    write_lines(tmp_path / "data/1.jsonl", [{"id": i} for i in range(7)])
    clock = StepClock()
    stopper = Stopper()
    commits: list[tuple[datetime, int]] = []
    steps = 0

    def sleep(seconds: float) -> None:
        nonlocal steps
        steps += 1
        clock.step(seconds)
        if steps == 5:  # new data while waiting for the next tick
            write_lines(tmp_path / "data/1.jsonl", [{"id": 100}], append=True)
        if clock.now > datetime(2026, 1, 5, 12, 20, tzinfo=UTC):
            stopper.request("test")

    dest = open_destination(loaded)
    m = NdjsonDriver.for_config(loaded, dest, clock=clock, stopper=stopper, sleep=sleep)
    real_commit = dest.commit

    def spy(writes, checkpoint, published_at):
        real_commit(writes, checkpoint, published_at)
        commits.append((published_at, sum(w.rows for w in writes)))

    dest.commit = spy  # type: ignore[method-assign]
    m.open()
    m.run_follow()
    m.close()
    dest.close()
    start = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
    # Backfill: three transactions at once (the first is never delayed, full ones not either).
    assert [n for _, n in commits] == [3, 3, 1, 1]
    assert all(t == start for t, _ in commits[:3])
    # Caught up: the next commit waits for a 5-minute tick after the last commit.
    assert commits[3][0] > start
    policy_tick = m.policy.next_commit_at(start, previous_was_full=False)
    assert policy_tick is not None and commits[3][0] >= policy_tick


def test_progress_logs_a_line_every_few_seconds(caplog: pytest.LogCaptureFixture) -> None:
    progress = Progress(None, every=0.0)
    with caplog.at_level(logging.INFO, logger="afterload.progress"):
        progress.start(0)
        progress.committed(2)
        progress.advance(1000, 2 << 20)
    assert "read 1000 documents (2.0 MiB)" in caplog.text
    assert "docs/s, 2 transactions committed" in caplog.text


def test_sigterm_commits_what_was_read_and_a_second_process_is_refused(
    tmp_path: Path, warehouse: Warehouse
) -> None:
    loaded = write_config(tmp_path, [ORDERS], warehouse=warehouse)
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1}])
    proc = subprocess.Popen(run_script(loaded.path, once=False), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        assert proc.stderr is not None
        while "committed transaction 1" not in proc.stderr.readline():
            assert time.monotonic() < deadline
        code, text = run_once(loaded)
        refusal = f"(pid {proc.pid}) holds" if warehouse.kind == "duckdb" else "is held by another"
        assert code == 1 and refusal in text
        write_lines(tmp_path / "data/1.jsonl", [{"id": 2}], append=True)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        proc.kill()
        proc.wait()
    assert warehouse.rows("SELECT id FROM orders ORDER BY id") == [(1,), (2,)]


def test_status_shows_offsets_sizes_rows_and_last_commit(tmp_path: Path) -> None:
    from afterload.cli.status import materialization_status

    loaded = write_config(tmp_path, [ORDERS])
    console = Console(file=io.StringIO(), record=True, width=200)
    assert materialization_status(loaded, console) == 0
    assert "does not exist yet" in console.export_text()
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1}, {"id": 2}, {"id": 1}])
    assert run_once(loaded)[0] == 0
    write_lines(tmp_path / "data/2.jsonl", [{"id": 3}])
    assert materialization_status(loaded, console) == 0
    text = console.export_text()
    assert "orders" in text and "30 B (75%)" in text and "40 B" in text
    assert "last commit:" in text and "1 transactions" in text
    line = next(x for x in text.splitlines() if "data/*.jsonl" in x)
    assert line.split()[-4:] == ["3", "│", "2", "│"]  # lines committed, rows in the table


def test_a_rejected_line_leaves_no_column_behind(tmp_path: Path, warehouse: Warehouse) -> None:
    loaded = write_config(tmp_path, [{**ORDERS, "rejects": "rejects.jsonl"}], warehouse=warehouse)
    write_lines(
        tmp_path / "data/1.jsonl",
        [{"id": 1, "v": 1}, {"id": 2, "brand_new": "x", "v": "not a number"}, {"id": 3, "v": 3}],
    )
    assert run_once(loaded)[0] == 0
    assert warehouse.rows("SELECT id, v FROM orders ORDER BY id") == [(1, 1), (3, 3)]
    columns = {
        r[0]
        for r in warehouse.rows(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'orders' AND table_schema = current_schema()"
        )
    }
    assert "brand_new" not in columns and "v" in columns


def test_a_nul_character_is_a_bad_line_where_it_cannot_be_stored(
    tmp_path: Path, warehouse: Warehouse
) -> None:
    loaded = write_config(tmp_path, [{**ORDERS, "rejects": "rejects.jsonl"}], warehouse=warehouse)
    write_lines(
        tmp_path / "data/1.jsonl",
        ['{"id": 1, "s": "a\\u0000b"}', '{"id": 2, "s": "back\\\\u0000slash"}', {"id": 3}],
    )
    assert run_once(loaded)[0] == 0
    ids = [r[0] for r in warehouse.rows("SELECT id FROM orders ORDER BY id")]
    rejected = (
        (tmp_path / "rejects.jsonl").read_text().splitlines()
        if (tmp_path / "rejects.jsonl").exists()
        else []
    )
    if warehouse.kind == "postgres":
        assert ids == [2, 3]  # an escaped backslash before u0000 is no NUL
        (entry,) = map(json.loads, rejected)
        assert entry["line"] == 1 and "NUL character" in entry["reason"]
    else:
        assert ids == [1, 2, 3] and rejected == []


def test_types_and_evolution_through_the_runtime(tmp_path: Path, warehouse: Warehouse) -> None:
    """Inferred types, a new property adding a column, an integer column widening to DOUBLE."""
    loaded = write_config(tmp_path, [ORDERS], warehouse=warehouse)
    write_lines(
        tmp_path / "data/1.jsonl",
        [{"id": 1, "n": 2, "ok": True, "s": "a", "obj": {"k": [1, 2]}, "tags": ["x"]}],
    )
    assert run_once(loaded)[0] == 0
    write_lines(tmp_path / "data/1.jsonl", [{"id": 2, "n": 2.5, "added": "new"}], append=True)
    assert run_once(loaded)[0] == 0
    got = warehouse.rows("SELECT id, n, ok, s, obj, tags, added FROM orders ORDER BY id")
    assert [(r[0], r[1], r[2], r[3], r[6]) for r in got] == [
        (1, 2.0, True, "a", None),
        (2, 2.5, None, None, "new"),
    ]
    assert json.loads(got[0][4]) == {"k": [1, 2]} and json.loads(got[0][5]) == ["x"]
    types = dict(
        warehouse.rows(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'orders' AND table_schema = current_schema()"
        )
    )
    assert types["n"].upper() in ("DOUBLE", "DOUBLE PRECISION")
    assert types["id"].upper() == "BIGINT" and types["ok"].upper() == "BOOLEAN"
