"""Date-time and date columns end to end, on both destinations: a value either lands as the
instant it names or is a bad line; it never lands as NULL or cut to another instant.

Before, Python's ISO 8601 reading was the check: DuckDB then stored NULL for week dates, the
basic format and a lower-case ``t``, and both destinations cut digits past the microsecond.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from afterload.cli.run import run_materialization
from afterload.config import LoadedConfig
from tests.materialize_support import Warehouse, write_config, write_lines

SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "at": {"type": "string", "format": "date-time"},
        "day": {"type": "string", "format": "date"},
    },
}
GOOD = {
    1: ("2026-01-01T00:00:00Z", "2026-01-01"),
    2: ("2026-01-01T00:00:00.123456000Z", "0001-01-01"),
    3: ("2026-06-30T23:59:59.5-09:30", "9999-12-31"),
    4: ("0001-01-01T00:00:00+01:00", "2024-02-29"),
    5: ("2026-12-03T10:15:00+16:00", "2026-01-01"),  # PostgreSQL reads offsets to 15:59 only
    6: ("2026-12-03T10:15:00-23:59", "2026-01-01"),
}
BAD = {  # each is a form some reader took differently before
    10: ("2026-W01-1", "2026-01-01"),
    11: ("20260101T000000Z", "2026-01-01"),
    12: ("2026-01-01t00:00:00Z", "2026-01-01"),
    13: ("2026-01-01T00:00:00", "2026-01-01"),
    14: ("2026-01-01T00:00:00.123456789Z", "2026-01-01"),
    15: ("2026-01-01T00:00:00Z", "2026-W01-1"),
    16: ("2026-01-01T00:00:00Z", "20260101"),
    17: ("2026-12-03T10:15:00+12:60", "2026-01-01"),  # was read as +13:00
    18: ("2026-12-03T10:15:00+24:00", "2026-01-01"),
}


def events(tmp_path: Path, warehouse: Warehouse, **binding: Any) -> LoadedConfig:
    """A binding of ev.jsonl into ``events``, typed by SCHEMA."""
    (tmp_path / "ev.schema.json").write_text(json.dumps(SCHEMA))
    block = {"source": "ev.jsonl", "table": "events", "schema": "ev.schema.json", **binding}
    return write_config(tmp_path, [block], warehouse=warehouse)


def test_every_date_time_lands_as_its_instant_or_is_a_bad_line(
    tmp_path: Path, warehouse: Warehouse
) -> None:
    loaded = events(tmp_path, warehouse, key=["/id"], rejects="rejects.jsonl")
    docs = [{"id": i, "at": at, "day": day} for i, (at, day) in {**GOOD, **BAD}.items()]
    write_lines(tmp_path / "ev.jsonl", docs)
    assert run_materialization(loaded, once=True) == 0

    epoch = 'epoch_us("at")' if warehouse.kind == "duckdb" else '(extract(epoch from "at") * 1e6)'
    found = warehouse.rows(f"SELECT id, {epoch}::BIGINT, day::VARCHAR FROM events ORDER BY id")
    expected = []
    for i, (at, day) in GOOD.items():
        moment = datetime.fromisoformat(at)
        micros = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // (moment.resolution)
        expected.append((i, micros, day))
    assert found == expected
    rejected = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [json.loads(r["document"])["id"] for r in rejected] == list(BAD)
    reasons = {json.loads(r["document"])["id"]: r["reason"] for r in rejected}
    assert (
        reasons[10] == "/at '2026-W01-1' is not an RFC 3339 date-time (such as "
        "2026-12-03T10:15:00Z or 2026-12-03T11:15:00.5+01:00)"
    )
    assert reasons[14] == (
        "/at '2026-01-01T00:00:00.123456789Z' has digits past the microsecond, "
        "which a TIMESTAMPTZ cannot hold (without format: date-time in the schema it is kept "
        "as text, every digit)"
    )
    assert reasons[16] == "/day '20260101' is not an RFC 3339 date (such as 2026-12-03)"


def test_a_date_time_key_is_one_row_per_instant_however_it_is_spelled(
    tmp_path: Path, warehouse: Warehouse
) -> None:
    """Two spellings of one instant in one transaction once made two rows for PostgreSQL's
    COPY, and the commit failed on the primary key: the reduce now keys by the instant."""
    loaded = events(tmp_path, warehouse, key=["/at"], hard_delete=True)
    write_lines(
        tmp_path / "ev.jsonl",
        [
            {"at": "2026-01-01T00:00:00Z", "id": 1},
            {"at": "2026-01-01T01:00:00+01:00", "id": 2},
            {"at": "2025-12-31T23:30:00.500000-00:30", "id": 3},
            {"at": "2026-01-01T00:00:00.5Z", "id": 4},
        ],
    )
    assert run_materialization(loaded, once=True) == 0
    assert warehouse.rows("SELECT id FROM events ORDER BY id") == [(2,), (4,)]
    write_lines(
        tmp_path / "ev.jsonl",
        [{"at": "2025-12-31T19:00:00-05:00", "_meta": {"op": "d"}}],
        append=True,
    )
    assert run_materialization(loaded, once=True) == 0
    assert warehouse.rows("SELECT id FROM events ORDER BY id") == [(4,)]


def test_a_date_time_postgres_cannot_read_is_a_bad_line_and_the_rest_commits(
    tmp_path: Path, warehouse: Warehouse
) -> None:
    """Outside the years 0001 to 9999 in UTC, with an offset of 16 hours or more: PostgreSQL
    cannot read it. That once stopped the run at commit, naming no line and holding back the
    transaction's good lines; it is a bad line there now (DuckDB stores it)."""
    loaded = events(tmp_path, warehouse, key=["/id"], rejects="rejects.jsonl")
    far = {1: "0001-01-01T10:00:00+16:00", 2: "9999-12-31T23:59:59-23:59"}
    docs = [{"id": i, "at": at} for i, at in far.items()]
    docs += [{"id": 3, "at": "0001-01-01T10:00:00+15:59"}, {"id": 4, "at": "2026-01-01T00:00:00Z"}]
    write_lines(tmp_path / "ev.jsonl", docs)
    assert run_materialization(loaded, once=True) == 0

    ids = [r[0] for r in warehouse.rows("SELECT id FROM events ORDER BY id")]
    path = tmp_path / "rejects.jsonl"
    rejected = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    if warehouse.kind == "duckdb":
        assert ids == [1, 2, 3, 4] and rejected == []
        return
    assert ids == [3, 4]
    assert [(r["source"], r["line"]) for r in rejected] == [("ev.jsonl", 1), ("ev.jsonl", 2)]
    assert rejected[0]["reason"] == (
        "/at '0001-01-01T10:00:00+16:00' is outside the years 0001 to 9999 in UTC, with an "
        "offset of 16 hours or more, which PostgreSQL cannot read"
    )
