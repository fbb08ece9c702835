"""DuckDB tables have no PRIMARY KEY: the merge alone keeps keys unique, on every path.

Crash recovery (SIGKILL of a real process mid-commit) is checked for uniqueness in
tests/ndjson/test_recovery.py; here: merges, deletes, key widening, tables an earlier version
created with a key, and a unique index a user added.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from afterload.core.checkpoint import Checkpoint
from afterload.core.schema import ColumnType, TableShape
from afterload.destinations.base import DestinationError, TableWrite
from afterload.destinations.duckdb.destination import DuckDBDestination

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def commit(dest: DuckDBDestination, shape: TableShape, ups: list[Any], dels: list[Any]) -> None:
    for doc in ups:
        shape.observe(doc)
    write = TableWrite(
        shape.binding,
        shape.binding,
        shape,
        [json.dumps(d).encode() for d in ups],
        [json.dumps(d).encode() for d in dels],
    )
    dest.commit([write], Checkpoint(), NOW)


def table(db: Path) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT id, v FROM t ORDER BY id").fetchall()
    finally:
        con.close()


def primary_keys(dest: DuckDBDestination) -> int:
    row = dest.con.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 't' "
        "AND constraint_type = 'PRIMARY KEY'"
    ).fetchone()
    assert row is not None
    return int(row[0])


def reduce(batch: list[tuple[bool, int, str]]) -> tuple[list[Any], list[Any]]:
    """The last document per key wins, as the transaction's combiner does."""
    last: dict[int, tuple[bool, str]] = {}
    for delete, key, value in batch:
        last[key] = (delete, value)
    ups = [{"id": k, "v": v} for k, (d, v) in last.items() if not d]
    dels = [{"id": k} for k, (d, _) in last.items() if d]
    return ups, dels


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("legacy", [False, True], ids=["no-key", "legacy-primary-key"])
def test_keys_stay_unique_through_merges_deletes_and_widening(
    tmp_path: Path, seed: int, legacy: bool
) -> None:
    rng = random.Random(seed)
    db = tmp_path / "w.duckdb"
    dest = DuckDBDestination(db)
    dest.open("shop")
    if legacy:  # as earlier versions created it
        dest.con.execute(
            "CREATE TABLE t (id BIGINT NOT NULL, v VARCHAR, flow_document JSON NOT NULL, "
            "flow_published_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (id))"
        )
    shape = TableShape("t", ["/id"], delta=False)
    model: dict[int, str] = {}
    keys = [*range(-3, 40), 2**63 - 1, -(2**63)]
    for step in range(12):
        if step == 8:  # the key grows past 64 bits: the column widens to HUGEINT
            keys += [2**64 + 5, -(2**100), 2**126]
        batch = [
            (rng.random() < 0.25, rng.choice(keys), rng.choice(["", "é\u0000x", "v" * 50]))
            for _ in range(rng.randrange(1, 30))
        ]
        ups, dels = reduce(batch)
        commit(dest, shape, ups, dels)
        for doc in ups:
            model[doc["id"]] = doc["v"]
        for doc in dels:
            model.pop(doc["id"], None)
        got = dest.con.execute("SELECT id, v FROM t ORDER BY id").fetchall()
        assert got == sorted(model.items()), f"step {step}"
    assert dest.columns("t") == {"id": ColumnType.HUGEINT, "v": ColumnType.VARCHAR}
    assert primary_keys(dest) == 0  # a legacy table loses its key when the key widens
    dest.close()
    assert table(db) == sorted(model.items())


def test_a_table_with_a_primary_key_keeps_working(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    dest = DuckDBDestination(db)
    dest.open("shop")
    dest.con.execute(
        "CREATE TABLE t (id BIGINT NOT NULL, v VARCHAR, flow_document JSON NOT NULL, "
        "flow_published_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (id))"
    )
    shape = TableShape("t", ["/id"], delta=False)
    commit(dest, shape, [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}], [])
    commit(dest, shape, [{"id": 2, "v": "c"}, {"id": 3, "v": "d"}], [{"id": 1}])
    assert primary_keys(dest) == 1
    dest.close()
    assert table(db) == [(2, "c"), (3, "d")]


def test_a_new_table_has_no_primary_key(tmp_path: Path) -> None:
    dest = DuckDBDestination(tmp_path / "w.duckdb")
    dest.open("shop")
    shape = TableShape("t", ["/id"], delta=False)
    commit(dest, shape, [{"id": 1, "v": "a"}], [])
    commit(dest, shape, [{"id": 1, "v": "b"}], [])
    assert primary_keys(dest) == 0
    assert dest.con.execute("SELECT id, v FROM t").fetchall() == [(1, "b")]
    dest.close()


def test_a_unique_index_a_user_added_works_and_widening_its_column_is_one_sentence(
    tmp_path: Path,
) -> None:
    db = tmp_path / "w.duckdb"
    dest = DuckDBDestination(db)
    dest.open("shop")
    shape = TableShape("t", ["/id"], delta=False)
    commit(dest, shape, [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}], [])
    dest.con.execute("CREATE UNIQUE INDEX t_id ON t (id)")
    # The merge deletes and re-inserts the same keys in one transaction: the index allows it.
    commit(dest, shape, [{"id": 1, "v": "c"}, {"id": 3, "v": "d"}], [{"id": 2}])
    with pytest.raises(DestinationError) as err:
        commit(dest, shape, [{"id": 2**70, "v": "big"}], [])
    message = str(err.value)
    assert "\n" not in message
    assert "column id of table t must widen to HUGEINT but index t_id depends on it" in message
    dest.close()
    assert table(db) == [(1, "c"), (3, "d")]  # the failed commit changed nothing


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("kind", ["no-key", "reopened", "legacy-primary-key", "unique-index"])
def test_surveyed_lines_keep_the_last_line_of_each_key(
    tmp_path: Path, seed: int, kind: str
) -> None:
    """Lines DuckDB reads itself arrive unreduced: the last line of a key wins, in the
    transaction and over the rows before, whatever keeps the table's keys unique. A table
    this process created is reduced after the insert; one it found (``reopened``) is probed
    for repeated keys and reduced before it."""
    rng = random.Random(seed)
    db = tmp_path / "w.duckdb"
    dest = DuckDBDestination(db)
    dest.open("shop")
    if kind == "legacy-primary-key":
        dest.con.execute(
            "CREATE TABLE t (id BIGINT NOT NULL, v VARCHAR, flow_document JSON NOT NULL, "
            "flow_published_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (id))"
        )
    shape = TableShape("t", ["/id"], delta=False)
    surveyor = dest.surveyor()
    assert surveyor is not None
    model: dict[int, str] = {}
    for step in range(8):
        batch = [
            (rng.randrange(-5, 25), rng.choice(["", "é\u0000x", "v" * 50, str(step)]))
            for _ in range(rng.randrange(1, 40))
        ]
        lines = [json.dumps({"id": k, "v": v}).encode() for k, v in batch]
        staged = surveyor.survey(shape, ["/id"], [b"\n".join(lines)], hard_delete=False)
        assert staged is not None, f"step {step}: usual lines took the exact path"
        write = TableWrite("t", "t", shape.snapshot(), [], staged=staged)
        dest.commit([write], Checkpoint(), NOW)
        if step == 0 and kind == "unique-index":
            dest.con.execute("CREATE UNIQUE INDEX t_id ON t (id)")
        if step == 0 and kind == "reopened":
            dest.close()
            dest = DuckDBDestination(db)
            dest.open("shop")
        model.update(batch)
        assert write.written == len(dict(batch))
        got = dest.con.execute("SELECT id, v FROM t ORDER BY id").fetchall()
        assert got == sorted(model.items()), f"step {step}"
        assert not staged.path.exists()  # the commit deleted its staged file
    surveyor.close()
    dest.close()
    assert table(db) == sorted(model.items())
