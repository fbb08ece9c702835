"""The PostgreSQL destination against the real server: types, evolution, deletes, names,
fencing, lost connections, a server restart mid-load, and connection errors in one sentence.

Each test works in a fresh schema of its own, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import yaml

from afterload.config import load_config
from afterload.core.checkpoint import BindingCheckpoint, Checkpoint, FilePosition
from afterload.core.jsonschema import shape_from_json_schema
from afterload.core.schema import ColumnType, TableShape
from afterload.destinations.base import (
    DestinationError,
    LockedError,
    Recovered,
    TableWrite,
)
from afterload.destinations.config import PostgresConfig
from afterload.destinations.postgres import writer as pgwriter
from afterload.destinations.postgres.connect import ConnectSettings
from afterload.destinations.postgres.destination import PostgresDestination
from afterload.destinations.postgres.dialect import pg_identifier
from afterload.destinations.postgres.status import PostgresStatus
from afterload.ndjson.driver import NdjsonDriver

DSN = os.environ.get("AFTERLOAD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


# -------------------------------------------------------------------------------------------
# Fixtures and helpers


def admin() -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(DSN, autocommit=True)


def query(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with admin() as conn:
        return conn.execute(sql, params or None).fetchall()


@pytest.fixture
def schema() -> Iterator[str]:
    name = f"afterload_test_{secrets.token_hex(5)}"
    yield name
    wait_for_server()
    with admin() as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def role() -> Iterator[str]:
    """A login role without privileges (trust authentication lets it in without a password)."""
    name = f"afterload_role_{secrets.token_hex(4)}"
    with admin() as conn:
        conn.execute(f'CREATE ROLE "{name}" LOGIN')
    yield name
    with admin() as conn:
        conn.execute(f'DROP OWNED BY "{name}"')
        conn.execute(f'DROP ROLE "{name}"')


def settings(schema: str, **extra: Any) -> ConnectSettings:
    config = PostgresConfig.model_validate({"dsn": DSN, "schema": schema, **extra})
    return ConnectSettings.from_config(config)


def destination(schema: str, **extra: Any) -> PostgresDestination:
    options: dict[str, Any] = {"backoff": 0.05, "max_backoff": 0.5, "lock_wait": 0.5}
    options.update({k: extra.pop(k) for k in list(extra) if k in ("attempts", "lock_wait")})
    return PostgresDestination(settings(schema, **extra), **options)


def recovered(schema: str) -> Recovered:
    """What a new process would resume from (it opens, so it raises the fence)."""
    dest = destination(schema)
    try:
        return dest.open("shop")
    finally:
        dest.close()


def cp(**position: Any) -> Checkpoint:
    """A checkpoint whose opaque driver part tells commits apart."""
    return Checkpoint(driver=position)


AT_7 = Checkpoint(bindings={"orders": BindingCheckpoint(files={"o.jsonl": FilePosition(7, 1)})})


def observed(shape: TableShape, *docs: dict[str, Any]) -> TableShape:
    for doc in docs:
        shape.observe(doc)
    return shape


def write(shape: TableShape, docs: list[Any], deletes: list[Any] | None = None) -> TableWrite:
    def raw(d: Any) -> bytes:
        return d if isinstance(d, bytes) else orjson.dumps(d)

    return TableWrite(
        shape.binding, shape.binding, shape, [raw(d) for d in docs], [raw(d) for d in deletes or []]
    )


def table_rows(
    schema: str, table: str, columns: str = "*", order: str = "1"
) -> list[tuple[Any, ...]]:
    return query(f'SELECT {columns} FROM "{schema}"."{table}" ORDER BY {order}')


def column_types(schema: str, table: str) -> dict[str, str]:
    rows = query(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s",
        schema,
        table,
    )
    return {str(n): str(t) for n, t in rows}


def backend_pid(dest: PostgresDestination) -> int:
    return int(dest.conn.info.backend_pid)


def terminate(pid: int) -> None:
    with admin() as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.1)


def wait_for_server(seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with admin() as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# -------------------------------------------------------------------------------------------
# Types, checkpoint, status


def test_types_checkpoint_round_trip_comments_and_status(schema: str) -> None:
    dest = destination(schema)
    first = dest.open("shop")
    assert first.checkpoint == Checkpoint() and first.fence == 1 and first.transactions == 0
    json_schema = {
        "properties": {
            "id": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date"},
        }
    }
    shape = shape_from_json_schema("orders", ["/id"], json_schema, delta=False)
    doc = {
        "id": 1,
        "at": "2025-03-04T05:06:07.5+02:00",
        "day": "2025-03-04",
        "price": 1.25,
        "ok": True,
        "name": "tab\there, back\\slash, new\nline, 'quote' \"dq\" ünïcode",
        "obj": {"a": [1, {"b": None}], "big": 18446744073709551615},
        "arr": [1, "two", 3.5],
    }
    observed(shape, doc)
    dest.commit([write(shape, [doc])], AT_7, NOW)
    dest.close()

    assert column_types(schema, "orders") == {
        "id": "bigint",
        "at": "timestamp with time zone",
        "day": "date",
        "price": "double precision",
        "ok": "boolean",
        "name": "text",
        "obj": "jsonb",
        "arr": "jsonb",
        "flow_document": "jsonb",
        "flow_published_at": "timestamp with time zone",
    }
    [row] = table_rows(schema, "orders")
    assert row[:8] == (
        1,
        datetime(2025, 3, 4, 3, 6, 7, 500000, tzinfo=UTC),
        date(2025, 3, 4),
        1.25,
        True,
        doc["name"],
        doc["obj"],
        doc["arr"],
    )
    assert row[8] == doc and row[9] == NOW
    # The whole document keeps numbers past 64 bits exactly.
    assert query(f"SELECT flow_document->'obj'->>'big' FROM \"{schema}\".orders") == [
        ("18446744073709551615",)
    ]
    nullable = query(
        "SELECT column_name, is_nullable FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = 'orders' AND is_nullable = 'NO'",
        schema,
    )
    assert {n for n, _ in nullable} == {"id", "flow_document", "flow_published_at"}
    [(table_comment,)] = query(f"SELECT obj_description('\"{schema}\".orders'::regclass)")
    assert "afterload" in table_comment and "'orders'" in table_comment
    [(col_comment,)] = query(f"SELECT col_description('\"{schema}\".orders'::regclass, 1)")
    assert col_comment == 'afterload: document property "id"'

    again = destination(schema)
    rec = again.open("shop")
    assert rec.checkpoint == AT_7
    assert rec.fence == 2 and rec.transactions == 1 and rec.committed_at == NOW
    assert again.columns("orders") == {
        "id": ColumnType.BIGINT,
        "at": ColumnType.TIMESTAMPTZ,
        "day": ColumnType.DATE,
        "price": ColumnType.DOUBLE,
        "ok": ColumnType.BOOLEAN,
        "name": ColumnType.VARCHAR,
        "obj": ColumnType.JSON,
        "arr": ColumnType.JSON,
    }
    assert again.columns("missing") is None
    again.close()

    status = PostgresStatus(settings(schema))
    info = status.read_checkpoint("shop")
    assert info is not None and info.transactions == 1 and info.fence == 2
    assert status.read_checkpoint("other") is None
    assert status.row_count("orders") == 1 and status.row_count("missing") is None
    status.close()
    nowhere = PostgresStatus(settings(schema + "_absent"))
    assert nowhere.read_checkpoint("shop") is None and nowhere.row_count("orders") is None
    nowhere.close()


def test_integers_past_64_bits_widen_the_column_to_numeric(schema: str) -> None:
    dest = destination(schema)
    dest.open("shop")
    shape = TableShape("t", ["/id"], delta=False, wide_ints=None)
    observed(shape, {"id": 1, "n": 1})
    dest.commit([write(shape, [{"id": 1, "n": 1}])], cp(v=1), NOW)
    big = 2**63 + 5
    observed(shape, {"id": 2, "n": big}, {"id": 2**80, "n": 1})  # the key column widens too
    assert shape.columns["n"].type is ColumnType.HUGEINT
    lines = [b'{"id":2,"n":%d}' % big, b'{"id":3,"n":-7}', b'{"id":%d,"n":1}' % 2**80]
    dest.commit([write(shape, lines)], cp(v=2), NOW)
    assert column_types(schema, "t")["n"] == "numeric"
    assert column_types(schema, "t")["id"] == "numeric"
    assert table_rows(schema, "t", "id, n") == [
        (1, 1),
        (2, Decimal(big)),
        (3, -7),
        (Decimal(2**80), 1),
    ]
    assert dest.columns("t") == {"id": ColumnType.HUGEINT, "n": ColumnType.HUGEINT}
    # Upserts into the widened columns keep working, past what orjson reads exactly too.
    dest.commit([write(shape, [b'{"id":1,"n":%d}' % (2**100 + 1)])], cp(v=3), NOW)
    assert table_rows(schema, "t", "n", "id")[0] == (Decimal(2**100 + 1),)
    dest.close()


def test_new_columns_and_bigint_widening_to_double(schema: str) -> None:
    dest = destination(schema)
    dest.open("shop")
    shape = observed(TableShape("t", ["/id"], delta=False), {"id": 1, "n": 1})
    dest.commit([write(shape, [{"id": 1, "n": 1}])], cp(v=1), NOW)
    doc = {"id": 2, "n": 2.5, "extra": "x", "more": {"k": 1}}
    observed(shape, doc)
    dest.commit([write(shape, [doc])], cp(v=2), NOW)
    types = column_types(schema, "t")
    assert types["n"] == "double precision" and types["extra"] == "text"
    assert types["more"] == "jsonb"
    assert table_rows(schema, "t", "id, n, extra") == [(1, 1.0, None), (2, 2.5, "x")]
    dest.close()
    reopened = destination(schema)
    reopened.open("shop")
    assert reopened.columns("t") == {
        "id": ColumnType.BIGINT,
        "n": ColumnType.DOUBLE,
        "extra": ColumnType.VARCHAR,
        "more": ColumnType.JSON,
    }
    reopened.close()


# -------------------------------------------------------------------------------------------
# Upserts, deletes, delta updates


def test_upsert_hard_delete_and_soft_delete(schema: str) -> None:
    dest = destination(schema)
    dest.open("shop")
    shape = TableShape("t", ["/id"], delta=False)
    docs = [{"id": i, "v": f"first {i}"} for i in range(1, 5)]
    dest.commit([write(observed(shape, *docs), docs)], cp(v=1), NOW)
    soft = {"id": 3, "v": "gone", "_meta": {"op": "d"}}
    update = {"id": 1, "v": "second"}
    new = {"id": 9, "v": "new"}
    observed(shape, update, soft, new)
    later = datetime(2026, 1, 2, tzinfo=UTC)
    dest.commit(
        [
            write(
                shape,
                [update, soft, new],
                # a hard delete, a key never seen, and a key no BIGINT column can hold
                deletes=[{"id": 2, "_meta": {"op": "d"}}, {"id": 77}, {"id": "x"}],
            )
        ],
        cp(v=2),
        later,
    )
    rows = table_rows(schema, "t", "id, v, _meta, flow_published_at")
    assert rows == [
        (1, "second", None, later),
        (3, "gone", {"op": "d"}, later),
        (4, "first 4", None, NOW),
        (9, "new", None, later),
    ]
    dest.close()


def test_keys_meeting_existing_rows_after_the_probe_are_merged(
    schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With no key probed, the straight COPY is tried, meets the primary key, and is undone.
    monkeypatch.setattr(pgwriter, "_PROBE_KEYS", 0)
    dest = destination(schema)
    dest.open("shop")
    shape = TableShape("t", ["/id", "/k"], delta=False)
    docs = [{"id": i, "k": "a", "v": i} for i in range(3)]
    dest.commit([write(observed(shape, *docs), docs)], cp(v=1), NOW)
    more = [{"id": 2, "k": "a", "v": 20}, {"id": 2, "k": "b", "v": 21}]
    dest.commit([write(observed(shape, *more), more)], cp(v=2), NOW)
    assert table_rows(schema, "t", "id, k, v", "1, 2") == [
        (0, "a", 0),
        (1, "a", 1),
        (2, "a", 20),
        (2, "b", 21),
    ]
    assert "t" in dest._merge_only
    dest.close()


def test_pg_identifier_rule() -> None:
    assert pg_identifier("select") == "select"
    assert pg_identifier("x" * 63) == "x" * 63
    long = "x" * 70
    short = pg_identifier(long)
    assert len(short.encode()) == 63 and short.startswith("x" * 54 + "_")
    assert pg_identifier(long) == short and pg_identifier("x" * 71) != short
    wide = "é" * 40  # 80 bytes; a cut in the middle of a character is not allowed
    cut = pg_identifier(wide)
    assert len(cut.encode()) <= 63 and cut.startswith("é" * 27 + "_")
    assert pg_identifier("") != "" and "\x00" not in pg_identifier("a\x00b")


AWKWARD = [
    "select",
    "Mixed Case",
    'say "hi"',
    "a b",
    "tab\tname",
    "x" * 70,
    "é" * 40,
    "it's",
    "back\\slash",
    "",
]


def test_awkward_identifiers_are_quoted_and_long_names_shortened(schema: str) -> None:
    table = 'Order Items "2024" ' + "t" * 60
    dest = destination(schema)
    dest.open("shop")
    shape = TableShape(table, ["/ID"], delta=False)
    doc: dict[str, Any] = {"ID": 1} | {name: i for i, name in enumerate(AWKWARD)}
    dest.commit([write(observed(shape, doc), [doc])], cp(v=1), NOW)
    physical = pg_identifier(table)
    names = query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
        "AND table_name = %s ORDER BY ordinal_position",
        schema,
        physical,
    )
    assert [n for (n,) in names] == [
        "ID",
        *(pg_identifier(n) for n in AWKWARD),
        "flow_document",
        "flow_published_at",
    ]
    assert all(len(n.encode()) <= 63 for (n,) in names)
    dest.close()

    again = destination(schema)
    again.open("shop")
    columns = again.columns(table)
    assert columns is not None and list(columns) == ["ID", *AWKWARD]
    # A second commit maps the names the same way (an upsert through the merge path).
    doc2 = {"ID": 1, "select": 100, "x" * 70: 700}
    again.commit([write(observed(shape, doc2), [doc2])], cp(v=2), NOW)
    long = pg_identifier("x" * 70)
    quoted = physical.replace('"', '""')
    assert query(f'SELECT "select", "{long}" FROM "{schema}"."{quoted}"') == [(100, 700)]
    again.close()


def test_names_that_would_meet_are_an_error(schema: str) -> None:
    dest = destination(schema)
    dest.open("shop")
    long = "y" * 80
    shape = TableShape("t", ["/id"], delta=False)
    doc = {"id": 1, long: 1, pg_identifier(long): 2}
    with pytest.raises(DestinationError, match="would both be column"):
        dest.commit([write(observed(shape, doc), [doc])], cp(v=1), NOW)
    assert dest.open is not None
    dest.close()


def test_a_nul_character_is_a_clear_error_and_nothing_is_committed(schema: str) -> None:
    dest = destination(schema)
    dest.open("shop")
    shape = TableShape("t", ["/id"], delta=False)
    doc = {"id": 1, "s": "a\x00b"}
    with pytest.raises(DestinationError, match=r"t: /s has a NUL character"):
        dest.commit([write(observed(shape, doc), [doc])], cp(v=1), NOW)
    ok = {"id": 2, "s": "fine"}
    dest.commit([write(shape, [ok])], cp(v=2), NOW)  # the connection is still usable
    assert table_rows(schema, "t", "id") == [(2,)]
    dest.close()


# -------------------------------------------------------------------------------------------
# Fencing and lost connections


def test_a_second_process_is_refused(schema: str) -> None:
    first = destination(schema)
    first.open("shop")
    second = destination(schema)
    with pytest.raises(LockedError, match="held by another afterload process") as err:
        second.open("shop")
    assert f"backend pid {backend_pid(first)}" in str(err.value)
    second.close()
    other = destination(schema)
    other.open("another")  # another materialization in the same schema is fine
    other.close()
    first.close()


def test_a_lost_connection_is_reestablished_and_the_commit_done(schema: str) -> None:
    dest = destination(schema)
    dest.open("shop")
    shape = observed(TableShape("t", ["/id"], delta=True), {"id": 1})
    dest.commit([write(shape, [{"id": 1}])], cp(n=1), NOW)
    terminate(backend_pid(dest))
    dest.commit([write(shape, [{"id": 2}])], cp(n=2), NOW)
    assert dest.reconnects == 1
    assert table_rows(schema, "t", "id") == [(1,), (2,)]
    dest.close()
    with pytest.raises(DestinationError, match="is not open"):
        dest.commit([write(shape, [{"id": 3}])], cp(n=3), NOW)  # closed: no reconnecting
    assert recovered(schema).transactions == 2


def test_a_commit_whose_acknowledgement_was_lost_is_not_applied_twice(
    schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = destination(schema)
    dest.open("shop")
    shape = observed(TableShape("t", ["/id"], delta=True), {"id": 1})
    conn = dest.conn
    real_commit = conn.commit

    def commit_then_lose() -> None:
        real_commit()
        conn.close()
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(conn, "commit", commit_then_lose)
    dest.commit([write(shape, [{"id": 1}, {"id": 2}])], cp(n=1), NOW)
    assert dest.reconnects == 1
    assert table_rows(schema, "t", "id") == [(1,), (2,)]  # appended once, not twice
    dest.commit([write(shape, [{"id": 3}])], cp(n=2), NOW)
    assert table_rows(schema, "t", "id") == [(1,), (2,), (3,)]
    dest.close()


def test_the_server_restarted_mid_load_loses_and_doubles_nothing(schema: str) -> None:
    dest = destination(schema, attempts=12)
    dest.open("shop")
    keyed = TableShape("orders", ["/id"], delta=False)
    appended = TableShape("events", ["/id"], delta=True)
    observed(keyed, {"id": 1, "batch": 1})
    observed(appended, {"id": 1, "batch": 1})
    per_commit = 500
    done = 0
    stop = threading.Event()
    failure: list[BaseException] = []

    def load() -> None:
        nonlocal done
        try:
            while not stop.is_set():
                docs = [{"id": done * per_commit + i, "batch": done} for i in range(per_commit)]
                writes = [write(keyed, docs), write(appended, docs)]
                dest.commit(writes, cp(commits=done + 1), NOW)
                done += 1
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        while done < 3 and worker.is_alive():
            time.sleep(0.02)
        version = next(Path("/etc/postgresql").iterdir()).name
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        wait_for_server()
        after = done
        while done < after + 3 and worker.is_alive():
            time.sleep(0.02)
    finally:
        stop.set()
        worker.join(60)
    assert not failure, failure
    assert dest.reconnects >= 1
    total = done * per_commit
    assert query(f'SELECT count(*), count(DISTINCT id) FROM "{schema}".orders') == [(total, total)]
    assert query(f'SELECT count(*), count(DISTINCT id) FROM "{schema}".events') == [(total, total)]
    assert query(f'SELECT min(id), max(id) FROM "{schema}".events') == [(0, total - 1)]
    dest.close()
    rec = recovered(schema)
    assert rec.checkpoint == cp(commits=done) and rec.transactions == done


# -------------------------------------------------------------------------------------------
# Connection errors


def test_a_missing_database_and_a_missing_user_are_one_sentence(schema: str) -> None:
    dest = destination(schema, database="no_such_db")
    started = time.monotonic()
    with pytest.raises(DestinationError) as err:
        dest.open("shop")
    assert str(err.value) == (
        "PostgreSQL at 127.0.0.1:5432 has no database 'no_such_db' (user 'postgres'); "
        "create it or check destination.postgres.database"
    )
    assert time.monotonic() - started < 2  # not retried: it would not pass
    with pytest.raises(DestinationError) as err:
        destination(schema, user="nobody_here").open("shop")
    assert str(err.value) == (
        "PostgreSQL at 127.0.0.1:5432 has no user 'nobody_here' (connecting to database "
        "'test'); check destination.postgres.user"
    )
    with pytest.raises(DestinationError, match="has no database 'no_such_db'"):
        PostgresStatus(settings(schema, database="no_such_db"))


@pytest.mark.parametrize(
    ("dsn", "said"),
    [
        (DSN + "?sslmode=bogus", 'invalid sslmode value: "bogus"'),
        (DSN.replace(":5432", ":99999"), 'invalid port number: "99999"'),
    ],
)
def test_a_setting_libpq_refuses_is_not_retried(schema: str, dsn: str, said: str) -> None:
    """A typo in the settings is no outage: before, it was retried six times."""
    dest = destination(schema, dsn=dsn, attempts=6)
    started = time.monotonic()
    with pytest.raises(DestinationError) as err:
        dest.open("shop")
    assert str(err.value) == (
        f"the connection settings are not valid: {said}; check destination.postgres"
    )
    assert time.monotonic() - started < 2


def test_missing_permissions_are_one_sentence(schema: str, role: str) -> None:
    # No CREATE on the database: the schema cannot be made.
    with pytest.raises(DestinationError) as err:
        destination(schema, user=role).open("shop")
    assert str(err.value) == (
        f"user {role!r} may not create schema {schema!r} in database 'test' on "
        "127.0.0.1:5432; create it or grant CREATE on the database"
    )
    # The schema exists, but the role may not create tables in it.
    with admin() as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
    with pytest.raises(DestinationError) as err:
        destination(schema, user=role).open("shop")
    assert str(err.value) == (
        f"user {role!r} may not create tables in schema {schema!r} of database 'test' on "
        "127.0.0.1:5432; grant CREATE on the schema"
    )
    # The checkpoint table is there and granted, but the data table cannot be created.
    owner = destination(schema)
    owner.open("shop")
    owner.close()
    with admin() as conn:
        conn.execute(f'GRANT ALL ON "{schema}"._afterload_checkpoints TO "{role}"')
    dest = destination(schema, user=role)
    dest.open("shop")
    shape = observed(TableShape("t", ["/id"], delta=False), {"id": 1})
    with pytest.raises(DestinationError) as err:
        dest.commit([write(shape, [{"id": 1}])], cp(v=1), NOW)
    assert str(err.value).startswith(
        f"user {role!r} lacks a permission in schema {schema!r} of database 'test' on "
        "127.0.0.1:5432 (the commit): permission denied for schema"
    )
    dest.close()


class FakeServer:
    """Speaks just enough of the protocol to ask for a password and refuse it.

    The real server trusts every connection from 127.0.0.1 (pg_hba.conf), so a wrong password
    cannot be provoked there; this one behaves as a server with password authentication does.
    """

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.passwords: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _recv(self, conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError
            data += chunk
        return data

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, contextlib.suppress(ConnectionError, OSError):
                while True:
                    (size,) = struct.unpack("!I", self._recv(conn, 4))
                    body = self._recv(conn, size - 4)
                    if struct.unpack("!I", body[:4])[0] in (80877103, 80877104):
                        conn.sendall(b"N")  # no SSL, no GSS encryption
                        continue
                    break
                conn.sendall(b"R" + struct.pack("!II", 8, 3))  # cleartext password, please
                self._recv(conn, 1)
                (size,) = struct.unpack("!I", self._recv(conn, 4))
                self.passwords.append(self._recv(conn, size - 4).rstrip(b"\x00"))
                fields = (
                    b"SFATAL\x00VFATAL\x00C28P01\x00"
                    b'Mpassword authentication failed for user "alice"\x00\x00'
                )
                conn.sendall(b"E" + struct.pack("!I", len(fields) + 4) + fields)

    def close(self) -> None:
        self.sock.close()


def test_a_wrong_password_is_one_sentence_that_never_shows_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "s3cret-Pa55word"
    server = FakeServer()
    caplog.set_level(logging.DEBUG)
    try:
        config = PostgresConfig.model_validate(
            {
                "host": "127.0.0.1",
                "port": server.port,
                "user": "alice",
                "password": secret,
                "database": "shop",
                "sslmode": "disable",
            }
        )
        dest = PostgresDestination.from_config(config)
        with pytest.raises(DestinationError) as err:
            dest.open("shop")
        assert str(err.value) == (
            f"PostgreSQL at 127.0.0.1:{server.port} rejected the password of user 'alice' "
            "(database 'shop'); check destination.postgres.password"
        )
        assert server.passwords == [secret.encode()]  # it was sent, and refused
        # The same with the password inside the DSN.
        in_dsn = PostgresConfig.model_validate(
            {"dsn": f"postgresql://alice:{secret}@127.0.0.1:{server.port}/shop?sslmode=disable"}
        )
        with pytest.raises(DestinationError) as err2:
            PostgresDestination.from_config(in_dsn).open("shop")
        texts = [
            str(err.value),
            str(err2.value),
            repr(dest),
            repr(dest.settings),
            dest.name,
            dest.settings.conninfo,
            ConnectSettings.from_config(in_dsn).conninfo,
            repr(config),
            str(config),
            caplog.text,
        ]
        assert all(secret not in text for text in texts)
        assert err.value.__cause__ is None and err.value.__suppress_context__
    finally:
        server.close()


def test_an_unanswering_server_times_out_and_is_retried_a_bounded_number_of_times() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # the kernel accepts the connection; nobody ever answers
    port = silent.getsockname()[1]
    try:
        config = PostgresConfig.model_validate(
            {"host": "127.0.0.1", "port": port, "user": "u", "database": "d", "connect_timeout": 2}
        )
        dest = PostgresDestination(ConnectSettings.from_config(config), attempts=2, backoff=0.01)
        started = time.monotonic()
        with pytest.raises(DestinationError) as err:
            dest.open("shop")
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert str(err.value).endswith(
        f"opening the materialization failed 2 times because the connection was lost or could "
        f"not be made; last: PostgreSQL at 127.0.0.1:{port} did not answer within 2s "
        "(database 'd', user 'u')"
    )
    assert 3.5 < elapsed < 10


def test_settings_from_parts_and_from_a_dsn() -> None:
    parts = ConnectSettings.from_config(
        PostgresConfig.model_validate(
            {"host": "db.example", "port": 6543, "user": "u", "database": "d", "sslmode": "require"}
        )
    )
    assert parts.where == "database 'd' on db.example:6543 as user 'u'"
    assert "sslmode=require" in parts.conninfo and "connect_timeout=10" in parts.conninfo
    mixed = ConnectSettings.from_config(
        PostgresConfig.model_validate(
            {"dsn": "postgresql://a:pw@h1:5000/x?connect_timeout=3", "database": "y"}
        )
    )
    assert mixed.where == "database 'y' on h1:5000 as user 'a'"
    assert "connect_timeout=3" in mixed.conninfo and "pw" not in mixed.conninfo
    with pytest.raises(DestinationError) as err:
        ConnectSettings.from_config(PostgresConfig.model_validate({"dsn": "password=zz9 =bad"}))
    assert "zz9" not in str(err.value)


# -------------------------------------------------------------------------------------------
# With the runtime


def test_the_runtime_loads_and_resumes_through_postgres(tmp_path: Path, schema: str) -> None:
    data = tmp_path / "orders.jsonl"
    data.write_text("".join(f'{{"id": {i}, "v": "a{i}"}}\n' for i in range(5)))
    config = {
        "name": "shop",
        "destination": {"postgres": {"dsn": DSN, "schema": schema}},
        "bindings": [{"source": "orders.jsonl", "table": "orders", "key": ["/id"]}],
        "transaction": {"max_documents": 2},
    }
    (tmp_path / "afterload.yaml").write_text(yaml.safe_dump(config))

    def run() -> int:
        loaded = load_config(tmp_path / "afterload.yaml")
        assert loaded.config.destination is not None
        assert loaded.config.destination.postgres is not None
        dest = PostgresDestination.from_config(loaded.config.destination.postgres)
        m = NdjsonDriver.for_config(loaded, dest)
        try:
            m.open()
            return m.run_once()
        finally:
            m.close()
            dest.close()

    assert run() == 5
    with open(data, "a") as f:
        f.write('{"id": 1, "v": "b1"}\n{"id": 9, "v": "a9"}\n')
    assert run() == 2
    assert table_rows(schema, "orders", "id, v") == [
        (0, "a0"),
        (1, "b1"),
        (2, "a2"),
        (3, "a3"),
        (4, "a4"),
        (9, "a9"),
    ]
