"""The DuckDB destination on real files: fencing, the file lock, evolution, deletes."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from afterload.core.schema import ColumnType, TableShape
from afterload.destinations.base import FencedError, LockedError, TableWrite
from afterload.destinations.duckdb.destination import DuckDBDestination
from afterload.destinations.duckdb.status import DuckDBStatus
from tests.materialize_support import rows

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def write(shape: TableShape, *docs: bytes, deletes: tuple[bytes, ...] = ()) -> TableWrite:
    return TableWrite(shape.binding, shape.binding, shape, list(docs), list(deletes))


def observed(shape: TableShape, *docs: dict[str, object]) -> TableShape:
    for doc in docs:
        shape.observe(doc)
    return shape


def test_checkpoint_commits_with_the_data_and_is_recovered(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    dest = DuckDBDestination(db)
    first = dest.open("shop")
    assert first.checkpoint == {} and first.fence == 1
    shape = observed(TableShape("t", ["/id"], delta=False), {"id": 1, "n": 1})
    dest.commit([write(shape, b'{"id":1,"n":1}')], {"v": 1}, NOW)
    dest.close()
    again = DuckDBDestination(db)
    rec = again.open("shop")
    assert rec.checkpoint == {"v": 1} and rec.fence == 2 and rec.transactions == 1
    assert rec.committed_at == NOW
    assert again.columns("t") == {"id": ColumnType.BIGINT, "n": ColumnType.BIGINT}
    again.close()
    status = DuckDBStatus(db, "main")
    assert status.row_count("t") == 1 and status.row_count("nope") is None
    info = status.read_checkpoint("shop")
    assert info is not None and info.transactions == 1
    status.close()


def test_a_stale_process_is_fenced_off(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    old = DuckDBDestination(db)
    old.open("shop")
    new = DuckDBDestination(db)  # same process: DuckDB shares the file, the fence guards it
    new.open("shop")
    shape = observed(TableShape("t", ["/id"], delta=False), {"id": 1})
    with pytest.raises(FencedError, match="opened by another process after this one"):
        old.commit([write(shape, b'{"id":1}')], {"stale": True}, NOW)
    new.commit([write(shape, b'{"id":2}')], {"fresh": True}, NOW)
    old.close()
    new.close()
    assert rows(db, "SELECT id FROM t") == [(2,)]
    assert rows(db, "SELECT checkpoint FROM _afterload_checkpoints") == [('{"fresh":true}',)]


def test_another_process_holding_the_file_is_named(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb,sys,time; c=duckdb.connect({str(db)!r}); print('ok', flush=True); "
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        with pytest.raises(
            LockedError, match=rf"another afterload process \(pid {holder.pid}\) holds"
        ):
            DuckDBDestination(db).open("shop")
    finally:
        holder.communicate("")


def test_evolution_and_deletes(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    dest = DuckDBDestination(db, "sales")
    dest.open("shop")
    shape = observed(TableShape("t", ["/id"], delta=False), {"id": 1, "n": 1})
    dest.commit([write(shape, b'{"id":1,"n":1}', b'{"id":2,"n":2}', b'{"id":3,"n":3}')], {}, NOW)
    shape.observe({"id": 1, "n": 1.5, "extra": "x"})
    dest.commit(
        [write(shape, b'{"id":1,"n":1.5,"extra":"x"}', deletes=(b'{"id":2,"_meta":{"op":"d"}}',))],
        {},
        NOW,
    )
    dest.close()
    assert rows(db, "SELECT id, n, extra FROM sales.t ORDER BY id") == [
        (1, 1.5, "x"),
        (3, 3.0, None),
    ]
    assert rows(db, "SELECT data_type FROM information_schema.columns WHERE column_name='n'") == [
        ("DOUBLE",)
    ]


def test_delta_tables_append_and_have_no_primary_key(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    dest = DuckDBDestination(db)
    dest.open("shop")
    shape = observed(TableShape("ev", ["/id"], delta=True), {"id": 1})
    dest.commit([write(shape, b'{"id":1}', b'{"id":1}')], {}, NOW)
    dest.commit([write(shape, b'{"id":1}')], {}, NOW)
    dest.close()
    assert rows(db, "SELECT count(*) FROM ev") == [(3,)]
    assert rows(
        db,
        "SELECT count(*) FROM duckdb_constraints() WHERE table_name='ev' "
        "AND constraint_type='PRIMARY KEY'",
    ) == [(0,)]
