"""The destination contract, run against DuckDB and PostgreSQL alike: what the core relies on.

Fencing, the typed checkpoint's round trip (through open and through status), delta tables,
evolution and deletes. Backend files (test_duckdb.py, test_postgres.py) keep only what is
particular to one backend: file locks, advisory locks, reconnects, identifiers, types.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from afterload.core.checkpoint import BindingCheckpoint, Checkpoint, FilePosition
from afterload.core.schema import ColumnType, TableShape
from afterload.destinations.base import Destination, FencedError, StatusReader, TableWrite
from afterload.destinations.config import DestinationConfig
from afterload.destinations.factory import open_destination, open_status
from tests.materialize_support import POSTGRES_DSN, rows

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LATER = datetime(2026, 1, 2, tzinfo=UTC)


class Backend:
    """One destination under the contract: made from config, as the factory makes it."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.schema = f"afterload_contract_{secrets.token_hex(5)}"
        if kind == "duckdb":
            block: dict[str, Any] = {"duckdb": {"path": "w.duckdb", "schema": self.schema}}
        else:
            block = {"postgres": {"dsn": POSTGRES_DSN, "schema": self.schema}}
        self.config = DestinationConfig.model_validate(block)
        self._held: list[Destination] = []

    def __repr__(self) -> str:
        return self.kind

    def make(self) -> Destination:
        dest = open_destination(self.config, self.tmp_path)
        if self.kind == "postgres":
            dest.lock_wait = 0.5  # type: ignore[attr-defined]
        return dest

    def status(self) -> StatusReader:
        reader = open_status(self.config, self.tmp_path)
        assert reader is not None
        return reader

    def take_over(self, old: Destination) -> Destination:
        """A new process opens the materialization while ``old`` still thinks it holds it."""
        if self.kind == "postgres":
            import psycopg

            pid = old._conn.info.backend_pid  # type: ignore[attr-defined]
            with psycopg.connect(POSTGRES_DSN, autocommit=True) as con:
                con.execute("SELECT pg_terminate_backend(%s)", [pid])
        new = self.make()
        new.open("shop")
        return new

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        sql = sql.replace("{s}", f'"{self.schema}"')
        if self.kind == "duckdb":
            return rows(self.tmp_path / "w.duckdb", sql)
        import psycopg

        with psycopg.connect(POSTGRES_DSN, autocommit=True) as con:
            return con.execute(sql).fetchall()

    def primary_keys(self, table: str) -> int:
        if self.kind == "duckdb":
            found = self.rows(
                "SELECT count(*) FROM duckdb_constraints() WHERE schema_name = "
                f"'{self.schema}' AND table_name = '{table}' AND constraint_type = 'PRIMARY KEY'"
            )
        else:
            found = self.rows(
                "SELECT count(*) FROM pg_index WHERE indisprimary AND indrelid = "
                f'\'"{self.schema}"."{table}"\'::regclass'
            )
        return int(found[0][0])

    def drop(self) -> None:
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(POSTGRES_DSN, autocommit=True) as con:
                con.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


@pytest.fixture(params=["duckdb", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    b = Backend(request.param, tmp_path)
    yield b
    b.drop()


def observed(shape: TableShape, *docs: dict[str, Any]) -> TableShape:
    for doc in docs:
        shape.observe(doc)
    return shape


def write(shape: TableShape, docs: list[Any], deletes: list[Any] | None = None) -> TableWrite:
    return TableWrite(
        shape.binding,
        shape.binding,
        shape,
        [orjson.dumps(d) for d in docs],
        [orjson.dumps(d) for d in deletes or []],
    )


def test_the_checkpoint_round_trips_through_open_and_status(backend: Backend) -> None:
    dest = backend.make()
    first = dest.open("shop")
    assert first.checkpoint == Checkpoint() and first.fence == 1 and first.transactions == 0
    checkpoint = Checkpoint(
        bindings={
            "t": BindingCheckpoint(
                files={"data/ünï code.jsonl": FilePosition(7, 1), "b.jsonl": FilePosition(0, 0)},
                rejects=42,
            ),
            "u": BindingCheckpoint(files={}),
        },
        driver={"flow": ["opaque", 1, None, {"nested": True}]},
    )
    shape = observed(TableShape("t", ["/id"], delta=False), {"id": 1, "n": 1})
    dest.commit([write(shape, [{"id": 1, "n": 1}])], checkpoint, NOW)
    dest.close()

    again = backend.make()
    rec = again.open("shop")
    assert rec.checkpoint == checkpoint
    assert rec.fence == 2 and rec.transactions == 1 and rec.committed_at == NOW
    assert again.columns("t") == {"id": ColumnType.BIGINT, "n": ColumnType.BIGINT}
    assert again.columns("missing") is None
    again.close()

    status = backend.status()
    try:
        info = status.read_checkpoint("shop")
        assert info is not None and info.checkpoint == checkpoint and info.transactions == 1
        assert status.read_checkpoint("other") is None
        assert status.row_count("t") == 1 and status.row_count("missing") is None
    finally:
        status.close()


def test_a_stale_process_is_fenced_off_and_commits_nothing(backend: Backend) -> None:
    old = backend.make()
    old.open("shop")
    shape = observed(TableShape("t", ["/id"], delta=False), {"id": 1})
    new = backend.take_over(old)
    stale = Checkpoint(driver="stale")
    with pytest.raises(FencedError):
        old.commit([write(shape, [{"id": 1}])], stale, NOW)
    new.commit([write(shape, [{"id": 2}])], Checkpoint(driver="fresh"), NOW)
    with pytest.raises(FencedError):  # and stays fenced off
        old.commit([write(shape, [{"id": 1}])], stale, NOW)
    old.close()
    new.close()
    assert backend.rows("SELECT id FROM {s}.t") == [(2,)]
    status = backend.status()
    try:
        info = status.read_checkpoint("shop")
    finally:
        status.close()
    assert info is not None and info.checkpoint.driver == "fresh"


def test_delta_tables_append_every_document_and_have_no_primary_key(backend: Backend) -> None:
    dest = backend.make()
    dest.open("shop")
    shape = TableShape("ev", ["/id"], delta=True)
    docs = [{"id": 1, "v": 1}, {"id": 1, "v": 2}]
    dest.commit([write(observed(shape, *docs), docs)], Checkpoint(), NOW)
    dest.commit([write(shape, [{"id": 1, "v": 3}])], Checkpoint(), NOW)
    dest.close()
    assert backend.rows("SELECT id, v FROM {s}.ev ORDER BY v") == [(1, 1), (1, 2), (1, 3)]
    assert backend.primary_keys("ev") == 0


def test_evolution_adds_columns_and_widens_integers_to_double(backend: Backend) -> None:
    dest = backend.make()
    dest.open("shop")
    shape = observed(TableShape("t", ["/id"], delta=False), {"id": 1, "n": 1})
    dest.commit([write(shape, [{"id": 1, "n": 1}, {"id": 2, "n": 2}])], Checkpoint(), NOW)
    update = {"id": 1, "n": 1.5, "extra": "x"}
    dest.commit([write(observed(shape, update), [update])], Checkpoint(), NOW)
    assert dest.columns("t") == {
        "id": ColumnType.BIGINT,
        "n": ColumnType.DOUBLE,
        "extra": ColumnType.VARCHAR,
    }
    dest.close()
    assert backend.rows("SELECT id, n, extra FROM {s}.t ORDER BY id") == [
        (1, 1.5, "x"),
        (2, 2.0, None),
    ]
    # PostgreSQL keeps its primary key; DuckDB's merge holds uniqueness without one.
    assert backend.primary_keys("t") == (1 if backend.kind == "postgres" else 0)


def test_upserts_hard_deletes_and_soft_deletes(backend: Backend) -> None:
    dest = backend.make()
    dest.open("shop")
    shape = TableShape("t", ["/id"], delta=False)
    docs = [{"id": i, "v": f"first {i}"} for i in range(1, 5)]
    dest.commit([write(observed(shape, *docs), docs)], Checkpoint(), NOW)
    soft = {"id": 3, "v": "gone", "_meta": {"op": "d"}}
    update, new = {"id": 1, "v": "second"}, {"id": 9, "v": "new"}
    observed(shape, update, soft, new)
    # a hard delete, and a key never seen
    hard = [{"id": 2, "_meta": {"op": "d"}}, {"id": 77, "_meta": {"op": "d"}}]
    dest.commit([write(shape, [update, soft, new], hard)], Checkpoint(), LATER)
    dest.close()
    found = backend.rows("SELECT id, v, flow_published_at FROM {s}.t ORDER BY id")
    assert [(i, v) for i, v, _ in found] == [
        (1, "second"),
        (3, "gone"),
        (4, "first 4"),
        (9, "new"),
    ]
    assert [at == (NOW if i == 4 else LATER) for i, _, at in found] == [True] * 4
