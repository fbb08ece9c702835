"""The run ledger table through the destination's own methods, on DuckDB and PostgreSQL:
created at open (idempotently), rows written, ended, read back newest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from afterload.destinations.duckdb.destination import DuckDBDestination
from afterload.destinations.factory import open_destination, open_status
from afterload.destinations.ledger import LedgerEntry, LedgerReader, RunLedger
from tests.materialize_support import Warehouse, write_config

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


def entry(n: int, decision: str = "started", run_id: int | None = None) -> LedgerEntry:
    return LedgerEntry(
        materialization="shop",
        trigger="dbt_job_trigger/42",
        job="dbt job 42",
        run_id=run_id,
        mode="skip",
        decision=decision,
        covers_transaction=n,
        covers_committed_at=T0 + timedelta(seconds=n),
        created_at=T0 + timedelta(seconds=n, milliseconds=500),
        url=None if run_id is None else f"http://127.0.0.1/runs/{run_id}/",
    )


def test_ledger_rows_round_trip(tmp_path: Path, warehouse: Warehouse) -> None:
    loaded = write_config(tmp_path, [], warehouse=warehouse)
    for _ in range(2):  # the second open finds the table and keeps its rows
        dest = open_destination(loaded.config.destination, loaded.base_dir)
        assert isinstance(dest, RunLedger)
        dest.open("shop")
        try:
            if not dest.read_runs("shop"):
                dest.record_run(entry(1, run_id=2**62))
                dest.record_run(entry(2, "skipped for run 4611686018427387904"))
                dest.record_run(entry(3, 'failed: dbt Cloud answered 400: naïve "quote" \' 100%'))
                dest.record_run(entry(4, "replaced 4611686018427387904", run_id=7))
        finally:
            dest.close()
    dest = open_destination(loaded.config.destination, loaded.base_dir)
    assert isinstance(dest, RunLedger)
    dest.open("shop")
    try:
        assert [e.run_id for e in dest.read_runs("shop", open_only=True)] == [7, 2**62]
        dest.finish_run(dest.read_runs("shop", last=1)[0].entry, "success", T0)
        assert [e.run_id for e in dest.read_runs("shop", open_only=True)] == [2**62]
        assert dest.read_runs("another") == []
    finally:
        dest.close()
    reader = open_status(loaded.config.destination, loaded.base_dir)
    assert isinstance(reader, LedgerReader)
    try:
        rows = reader.read_runs("shop")
    finally:
        reader.close()
    assert [r.covers_transaction for r in rows] == [4, 3, 2, 1]
    assert rows[0].status == "success" and rows[0].finished_at == T0
    assert rows[1].decision == 'failed: dbt Cloud answered 400: naïve "quote" \' 100%'
    assert rows[3].covers_committed_at == T0 + timedelta(seconds=1)
    assert rows[3].model_dump(exclude={"entry"}) == entry(1, run_id=2**62).model_dump(
        exclude={"entry"}
    )


def test_duckdb_ledger_writes_while_the_connection_is_released(tmp_path: Path) -> None:
    """Between commits the file may be released for other readers: a ledger write takes it
    for the one statement, in the destination's turn, and leaves it released."""
    dest = DuckDBDestination(tmp_path / "w.duckdb")
    dest.open("shop")
    try:
        assert dest._con is not None
        dest._con.close()
        dest._con = None  # released, as a caught-up run leaves it
        dest.record_run(entry(1, run_id=5))
        assert dest._con is None
        assert [e.run_id for e in dest.read_runs("shop")] == [5]
    finally:
        dest.close()
