"""Issue 12, PostgreSQL part: afterload's COPY-text encoder against letting the server parse
(COPY the raw lines, shred in SQL) and against binary COPY, side by side.

    .venv/bin/python bench/bench_pg_copy.py [--docs 1000000] [--repeat 3]
        [--dsn postgresql://postgres@127.0.0.1:5432/test]

Reads the cached bench/data/orders-1000000.jsonl (its first ``--docs`` lines) into memory as
the lines afterload hands its destination, then loads them into an empty table of the shape
afterload creates for that binding (key /id), one COPY and one commit per 200,000 documents:

  a. afterload encoder   encode_rows (exactjson parse, checks, COPY text), as the writer does
  b. server parses, temp  raw lines COPYed into a TEMP (ON COMMIT DROP) JSONB table, then
                          INSERT … SELECT shredding them in SQL, in the same transaction
  b2. server parses, unl. the same through an UNLOGGED staging table, truncated per transaction
  c. binary COPY          orjson parse, psycopg binary COPY with write_row
  d. ceiling              COPY of the rows afterload's encoder made before the clock started

Cases are interleaved and rotated per repeat; each run gets a fresh connection, a freshly
created table and a CHECKPOINT first. Wall time, this process's CPU time and the server
backend's CPU time (/proc/<pid>/stat, so the server must run on this machine) are the medians
of the repeats. Every run's row count is checked, and each case's table is compared with the
afterload encoder's, column by column. A probe of edge-case documents (NUL, integers past 64
bits, non-ASCII, escapes, non-shortest numbers, nulls, wrong types) shows what each way keeps.
Not a test: it prints Markdown.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import secrets
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_dumps

from afterload.core import exactjson
from afterload.core.exactjson import dumps
from afterload.core.schema import ColumnType
from afterload.destinations.postgres.encode import (
    BadValue,
    Plan,
    Projections,
    _escape,
    encoder,
    has_nul_escape,
    project,
)

_NULL = "\\N"
_CHUNK_ROWS = 2048


# The Python COPY-text encoder the writer used before the server shredded lines (kept here
# as the baseline this benchmark measured).
def _document_text(raw: bytes) -> str:
    text = raw.decode()
    if "\\" in text and has_nul_escape(text):
        raise BadValue("the document has a NUL character (\\u0000), which JSONB cannot store")
    return _escape(text)


def encode_rows(
    lines: Iterable[bytes],
    plan: Plan,
    stamp: str,
    projections: Projections | None = None,
    *,
    embedded: bool = False,
) -> Iterator[bytes]:
    """COPY text for whole rows (the plan's columns, the document, the commit time), in chunks.

    With ``embedded`` the document is the line's ``flow_document`` property (Flow rows).
    """
    loads = exactjson.loads
    tail = "\t" + stamp
    rows: list[str] = []
    for raw in lines:
        doc = loads(raw)
        if projections:
            project(doc, projections)
        values = [_NULL if (v := doc.get(n)) is None else enc(v) for n, enc in plan]
        values.append(
            _document_text(dumps(doc["flow_document"]).encode())
            if embedded
            else _document_text(raw)
        )
        rows.append("\t".join(values) + tail)
        if len(rows) >= _CHUNK_ROWS:
            rows.append("")
            yield "\n".join(rows).encode()
            rows = []
    if rows:
        rows.append("")
        yield "\n".join(rows).encode()


HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "orders-1000000.jsonl"
BATCH = 200_000
TABLE = "orders"

# The shape afterload infers for the orders binding (key /id): key first, then the properties
# in order of appearance; catalog.py adds the document and the commit time and the primary key.
SHAPE: list[tuple[str, ColumnType]] = [
    ("id", ColumnType.BIGINT),
    ("customer", ColumnType.VARCHAR),
    ("amount", ColumnType.DOUBLE),
    ("created_at", ColumnType.VARCHAR),
    ("shipping", ColumnType.JSON),
    ("tags", ColumnType.JSON),
    ("status", ColumnType.VARCHAR),
]
PG = {
    ColumnType.BIGINT: ("BIGINT", "int8", "(j->>'{0}')::bigint"),
    ColumnType.VARCHAR: ("TEXT", "text", "j->>'{0}'"),
    ColumnType.DOUBLE: ("DOUBLE PRECISION", "float8", "(j->>'{0}')::float8"),
    ColumnType.JSON: ("JSONB", "jsonb", "NULLIF(j->'{0}', 'null'::jsonb)"),
}
KEY = {"id"}
COLUMNS = [*(name for name, _ in SHAPE), "flow_document", "flow_published_at"]
TARGET = ", ".join(COLUMNS)
DDL = ", ".join(
    [
        *(f"{n} {PG[t][0]}{' NOT NULL' if n in KEY else ''}" for n, t in SHAPE),
        "flow_document JSONB NOT NULL",
        "flow_published_at TIMESTAMPTZ NOT NULL",
        "PRIMARY KEY (id)",
    ]
)
SHRED = ", ".join([*(PG[t][2].format(n) for n, t in SHAPE), "j", "%s::timestamptz"])
BINARY_TYPES = [*(PG[t][1] for _, t in SHAPE), "jsonb", "timestamptz"]
SLICE = 1 << 20

Conn = psycopg.Connection[Any]


def plan() -> Plan:
    """The plan Writer._plan builds: one encoder per column, from its type."""
    return [(name, encoder(name, ctype)) for name, ctype in SHAPE]


def batches(lines: list[bytes]) -> list[list[bytes]]:
    return [lines[i : i + BATCH] for i in range(0, len(lines), BATCH)]


# -- the cases -------------------------------------------------------------------------------


def load_afterload(conn: Conn, lines: list[bytes], stamp: datetime) -> None:
    text, the_plan = stamp.isoformat(), plan()
    for batch in batches(lines):
        with conn.cursor() as cur, cur.copy(f"COPY {TABLE} ({TARGET}) FROM STDIN") as copy:
            for chunk in encode_rows(batch, the_plan, text):
                copy.write(chunk)
        conn.commit()


def copy_text(lines: list[bytes]) -> bytes:
    """Raw lines as one COPY-text column: JSON has no raw newline, only backslash (and tab or
    carriage return as whitespace between tokens) need escaping; done on the whole batch."""
    blob = b"\n".join(lines) + b"\n"
    if b"\\" in blob:
        blob = blob.replace(b"\\", b"\\\\")
    if b"\t" in blob:
        blob = blob.replace(b"\t", b"\\t")
    if b"\r" in blob:
        blob = blob.replace(b"\r", b"\\r")
    return blob


def _stage_and_shred(conn: Conn, stage: str, batch: list[bytes], stamp: datetime) -> None:
    blob = memoryview(copy_text(batch))
    with conn.cursor() as cur:
        with cur.copy(f"COPY {stage} (j) FROM STDIN") as copy:
            for i in range(0, len(blob), SLICE):
                copy.write(blob[i : i + SLICE])
        cur.execute(f"INSERT INTO {TABLE} ({TARGET}) SELECT {SHRED} FROM {stage}", [stamp])


def load_server_temp(conn: Conn, lines: list[bytes], stamp: datetime) -> None:
    stage = "pg_temp._afterload_stage"
    for batch in batches(lines):
        conn.execute(f"CREATE TEMP TABLE {stage} (j JSONB) ON COMMIT DROP")
        _stage_and_shred(conn, stage, batch, stamp)
        conn.commit()


def load_server_unlogged(conn: Conn, lines: list[bytes], stamp: datetime) -> None:
    stage = "_afterload_stage"
    for batch in batches(lines):
        conn.execute(f"TRUNCATE {stage}")
        _stage_and_shred(conn, stage, batch, stamp)
        conn.commit()


def _jsonb_dumps(value: Any) -> bytes:
    """psycopg's jsonb dumper: bytes are JSON text already (the raw line), the rest orjson."""
    return value if type(value) is bytes else orjson.dumps(value)


def load_binary(conn: Conn, lines: list[bytes], stamp: datetime) -> None:
    set_json_dumps(_jsonb_dumps, context=conn)
    loads = orjson.loads
    names = [name for name, _ in SHAPE]
    for batch in batches(lines):
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY {TABLE} ({TARGET}) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types(BINARY_TYPES)
            write_row = copy.write_row
            for raw in batch:
                doc = loads(raw)
                write_row([*(doc.get(n) for n in names), raw, stamp])
        conn.commit()


def preencode(lines: list[bytes], stamp: datetime) -> list[list[bytes]]:
    text, the_plan = stamp.isoformat(), plan()
    return [list(encode_rows(batch, the_plan, text)) for batch in batches(lines)]


def load_ceiling(conn: Conn, encoded: list[list[bytes]]) -> None:
    for chunks in encoded:
        with conn.cursor() as cur, cur.copy(f"COPY {TABLE} ({TARGET}) FROM STDIN") as copy:
            for chunk in chunks:
                copy.write(chunk)
        conn.commit()


@dataclass
class Case:
    key: str
    name: str
    load: Callable[[Conn, list[bytes], datetime], None]
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    server: list[float] = field(default_factory=list)
    differs: list[str] = field(default_factory=list)
    hashes: list[str] | None = None


# -- measuring -------------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def backend_cpu(pid: int) -> float | None:
    """utime + stime of a server process, if it runs on this machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def recreate(admin: Conn, unlogged_stage: bool) -> None:
    admin.execute(f"DROP TABLE IF EXISTS {TABLE}, _afterload_stage")
    admin.execute(f"CREATE TABLE {TABLE} ({DDL})")
    if unlogged_stage:
        admin.execute("CREATE UNLOGGED TABLE _afterload_stage (j JSONB)")
    admin.commit()
    admin.execute("CHECKPOINT")
    admin.commit()


def column_hashes(admin: Conn) -> list[str]:
    """One md5 per column over all rows in key order (the md5 of each value's text)."""
    parts = ", ".join(
        f"md5(string_agg(md5(coalesce({c}::text, '<null>')), '' ORDER BY id))" for c in COLUMNS
    )
    row = admin.execute(f"SELECT {parts} FROM {TABLE}").fetchone()
    admin.commit()
    assert row is not None
    return [str(v) for v in row]


def run_case(case: Case, dsn: str, schema: str, lines: list[bytes], stamp: datetime) -> None:
    with psycopg.connect(dsn, options=f"-c search_path={schema}") as admin:
        recreate(admin, case.key == "b2")
        with psycopg.connect(dsn, options=f"-c search_path={schema}") as conn:
            pid = conn.info.backend_pid
            gc.collect()
            s0, c0, w0 = backend_cpu(pid), time.process_time(), time.perf_counter()
            case.load(conn, lines, stamp)
            w1, c1, s1 = time.perf_counter(), time.process_time(), backend_cpu(pid)
        count = admin.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
        admin.commit()
        if count != (len(lines),):
            raise SystemExit(f"{case.name}: {count} rows, expected {len(lines)}")
        case.wall.append(w1 - w0)
        case.cpu.append(c1 - c0)
        if s0 is not None and s1 is not None:
            case.server.append(s1 - s0)
        if case.hashes is None:
            case.hashes = column_hashes(admin)


# -- the probe -------------------------------------------------------------------------------

PROBES: list[tuple[str, bytes]] = [
    ("NUL in a text column", rb'{"id":1,"customer":"a\u0000b"}'),
    ("NUL in a nested value", rb'{"id":2,"shipping":{"city":"x\u0000"}}'),
    ("key past 64 bits", rb'{"id":18446744073709551616}'),
    ("nested integer past 64 bits", rb'{"id":4,"shipping":{"n":18446744073709551617}}'),
    (
        "non-ASCII, escapes",
        rb'{"id":5,"customer":"Zo\u00eb \ud83d\ude00 '
        + "日本".encode()
        + rb'","status":"a\\b\"c\td"}',
    ),
    ("non-shortest numbers", rb'{"id":6,"amount":0.30000000000000001,"tags":[1E2,1.50]}'),
    ("JSON nulls", rb'{"id":7,"customer":null,"shipping":null}'),
    ("number in a text column", rb'{"id":8,"customer":123}'),
    ("string in the key column", rb'{"id":"9"}'),
    ("tab as JSON whitespace", b'{"id":10,\t"customer":"x"}'),
]


def probe_row(admin: Conn) -> tuple[Any, ...] | None:
    cols = ", ".join(f"{c}::text" for c in COLUMNS[:-1])
    row = admin.execute(f"SELECT {cols} FROM {TABLE}").fetchone()
    admin.commit()
    return row


def probe_one(case: Case, dsn: str, schema: str, line: bytes, stamp: datetime) -> Any:
    with psycopg.connect(dsn, options=f"-c search_path={schema}") as admin:
        admin.execute(f"DROP TABLE IF EXISTS {TABLE}, _afterload_stage")
        admin.execute(f"CREATE TABLE {TABLE} ({DDL})")
        admin.execute("CREATE UNLOGGED TABLE _afterload_stage (j JSONB)")
        admin.commit()
        with psycopg.connect(dsn, options=f"-c search_path={schema}") as conn:
            try:
                case.load(conn, [line], stamp)
            except BadValue:
                conn.rollback()
                return "refused by client (BadValue)"
            except psycopg.Error as exc:
                conn.rollback()
                return f"refused by server ({type(exc).__name__})"
            except (ValueError, TypeError, OverflowError) as exc:
                conn.rollback()
                return f"refused by client ({type(exc).__name__})"
        return probe_row(admin)


def show(row: tuple[Any, ...]) -> str:
    return ", ".join(f"{c}={v}" for c, v in zip(COLUMNS, row, strict=False) if v is not None)


def probe(cases: list[Case], dsn: str, schema: str, stamp: datetime) -> list[str]:
    out = ["| probe | " + " | ".join(c.key for c in cases) + " |"]
    out.append("|---" * (len(cases) + 1) + "|")
    notes: list[str] = []
    for label, line in PROBES:
        got = [probe_one(c, dsn, schema, line, stamp) for c in cases]
        cells = []
        for case, result in zip(cases, got, strict=True):
            if isinstance(result, str):
                cells.append(result)
            elif case is cases[0] or result == got[0]:
                cells.append("stored" if case is cases[0] else "stored, = a")
            else:
                cells.append("stored, DIFFERS")
                notes.append(f"- {label}, {case.key}: {show(result)}")
        if isinstance(got[0], tuple) and any(n.startswith(f"- {label},") for n in notes):
            notes.append(f"- {label}, a: {show(got[0])}")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*out, "", *sorted(set(notes))]


# -- report ----------------------------------------------------------------------------------


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "n/a"


def verdicts(cases: list[Case], base: Case, ceiling: Case) -> list[str]:
    out = []
    b_wall, d_wall = statistics.median(base.wall), statistics.median(ceiling.wall)
    b_cpu = statistics.median(base.cpu)
    for case in cases:
        if case is base:
            continue
        wall, cpu = statistics.median(case.wall), statistics.median(case.cpu)
        ratio = b_wall / wall
        how = f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"
        line = (
            f"- {case.name}: {how} wall than the afterload encoder, client CPU "
            f"{cpu:.2f} s vs {b_cpu:.2f} s; {d_wall / wall:.0%} of the ceiling"
        )
        if case.differs:
            line += f"; but its table DIFFERS in {', '.join(case.differs)}: not a win"
        else:
            line += f"; table identical to a's ({len(COLUMNS)} columns, every row)"
        out.append(line)
    return out


def report(cases: list[Case], lines: int, repeat: int, meta: dict[str, str]) -> None:
    print(f"\n## PostgreSQL COPY: {lines:,} orders, transactions of {BATCH:,}, {repeat} repeats\n")
    for k, v in meta.items():
        print(f"- {k}: {v}")
    print("\n| case | wall s (median) | client CPU s | server CPU s | wall range s |")
    print("|---|---:|---:|---:|---|")
    for c in cases:
        rng = f"{min(c.wall):.2f}–{max(c.wall):.2f}"
        print(f"| {c.name} | {fmt(c.wall)} | {fmt(c.cpu)} | {fmt(c.server)} | {rng} |")
    print()
    for line in verdicts(cases, cases[0], cases[-1]):
        print(line)


def read_lines(docs: int) -> list[bytes]:
    with open(DATA, "rb") as f:
        lines = [line.rstrip(b"\n") for _, line in zip(range(docs), f, strict=False)]
    if len(lines) < docs:
        raise SystemExit(f"{DATA} has only {len(lines)} lines")
    return lines


def measure(args: argparse.Namespace, cases: list[Case], schema: str) -> None:
    lines = read_lines(args.docs)
    stamp = datetime.now(UTC)
    encoded = preencode(lines, stamp)  # before any clock starts
    cases[-1].load = lambda conn, _lines, _stamp: load_ceiling(conn, encoded)
    for r in range(args.repeat):
        for i in range(len(cases)):
            case = cases[(i + r) % len(cases)]
            run_case(case, args.dsn, schema, lines, stamp)
            print(f"repeat {r + 1}: {case.name}: {case.wall[-1]:.2f} s", flush=True)
    base = cases[0].hashes
    for case in cases[1:]:
        assert base is not None and case.hashes is not None
        case.differs = [c for c, x, y in zip(COLUMNS, base, case.hashes, strict=True) if x != y]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    cases = [
        Case("a", "a. afterload encoder (COPY text)", load_afterload),
        Case("b", "b. server parses (TEMP stage + INSERT…SELECT)", load_server_temp),
        Case("b2", "b2. server parses (UNLOGGED stage + INSERT…SELECT)", load_server_unlogged),
        Case("c", "c. binary COPY (orjson + write_row)", load_binary),
        Case("d", "d. ceiling (COPY of pre-encoded rows)", load_afterload),
    ]
    before = loadavg()
    schema = "bench_pgcopy_" + secrets.token_hex(4)
    with psycopg.connect(args.dsn, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        version = admin.execute("SHOW server_version").fetchone()
    try:
        measure(args, cases, schema)
        probe_table = probe(cases[:-1], args.dsn, schema, datetime.now(UTC))
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
    meta = {
        "load average (1/5/15 min) before": before,
        "load average after": loadavg(),
        "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        "PostgreSQL": version[0] if version else "?",
        "psycopg": f"{psycopg.__version__} ({psycopg.pq.__impl__}), orjson {orjson.__version__}",
        "server CPU": "the backend's utime+stime (/proc), not WAL writer or checkpointer",
    }
    report(cases, args.docs, args.repeat, meta)
    print("\n### What each way does with edge-case documents (one per transaction)\n")
    print("\n".join(probe_table))


if __name__ == "__main__":
    main()
