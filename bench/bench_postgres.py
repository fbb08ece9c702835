"""PostgreSQL destination benchmark: afterload against hand-written COPY, side by side.

    .venv/bin/python bench/bench_postgres.py [--dsn postgresql://postgres@127.0.0.1:5432/test]
        [--docs 1000000] [--updates 200000] [--max-documents 200000]

Uses the documents of bench_duckdb.py (cached under bench/data/, git-ignored) and a scratch
schema that is dropped at the end. afterload runs in this process: the runtime's Materializer
(read, parse, check, reduce) with the PostgreSQL destination, exactly as ``run --once`` does.
Not a test: it prints a table.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_duckdb import DATA, standard_inputs  # noqa: E402

from afterload.config import load_config  # noqa: E402
from afterload.destinations.base import TableWrite  # noqa: E402
from afterload.destinations.postgres.connect import ConnectSettings  # noqa: E402
from afterload.destinations.postgres.destination import PostgresDestination  # noqa: E402
from afterload.ndjson.driver import NdjsonDriver  # noqa: E402

COLUMNS = [
    ("id", "BIGINT NOT NULL"),
    ("customer", "TEXT"),
    ("amount", "DOUBLE PRECISION"),
    ("created_at", "TEXT"),
    ("shipping", "JSONB"),
    ("tags", "JSONB"),
    ("status", "TEXT"),
    ("flow_document", "JSONB NOT NULL"),
    ("flow_published_at", "TIMESTAMPTZ NOT NULL"),
]
NAMES = ", ".join(name for name, _ in COLUMNS)


def esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def copy_lines(path: Path, stamp: str, *, reduce: bool = False) -> Iterator[bytes]:
    """The rows a careful hand-written loader sends: parse, pick the columns, COPY text.

    With ``reduce`` the last document per id wins, as one merge statement needs.
    """
    loads, dumps = orjson.loads, orjson.dumps
    with open(path, "rb") as f:
        docs: Iterator[tuple[bytes, Any]] = ((raw, loads(raw)) for raw in f)
        if reduce:
            docs = iter({d["id"]: (raw, d) for raw, d in docs}.values())
        rows: list[str] = []
        for raw, d in docs:
            rows.append(
                f"{d['id']}\t{esc(d['customer'])}\t{d['amount']!r}\t{d['created_at']}\t"
                f"{esc(dumps(d['shipping']).decode())}\t{esc(dumps(d['tags']).decode())}\t"
                f"{d['status']}\t{esc(raw.decode().rstrip())}\t{stamp}\n"
            )
            if len(rows) == 2048:
                yield "".join(rows).encode()
                rows = []
        if rows:
            yield "".join(rows).encode()


def create(conn: psycopg.Connection[Any], table: str) -> None:
    cols = ", ".join(f"{n} {t}" for n, t in COLUMNS)
    conn.execute(f"CREATE TABLE {table} ({cols}, PRIMARY KEY (id))")
    conn.commit()


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def copy_into(
    conn: psycopg.Connection[Any], target: str, chunks: Iterator[bytes] | list[bytes]
) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {target} ({NAMES}) FROM STDIN") as copy:
        for chunk in chunks:
            copy.write(chunk)


def copy_committed(
    conn: psycopg.Connection[Any], target: str, chunks: Iterator[bytes] | list[bytes]
) -> Callable[[], None]:
    def run() -> None:
        copy_into(conn, target, chunks)
        conn.commit()

    return run


def checkpoint(conn: psycopg.Connection[Any]) -> None:
    """Start each measurement with clean shared buffers and WAL, so none pays for another."""
    conn.execute("CHECKPOINT")


class TimedDestination(PostgresDestination):
    """Counts the time spent in commits, to split the runtime's share from the destination's."""

    seconds = 0.0

    def commit(
        self, writes: list[TableWrite], checkpoint: dict[str, Any], published_at: datetime
    ) -> None:
        start = time.perf_counter()
        super().commit(writes, checkpoint, published_at)
        self.seconds += time.perf_counter() - start


def run_afterload(config: Path, dsn: str, schema: str) -> tuple[float, float]:
    """``run --once`` in this process: total seconds and seconds inside the destination."""
    start = time.perf_counter()
    loaded = load_config(config)
    assert loaded.config.destination is not None and loaded.config.destination.postgres
    dest = TimedDestination(ConnectSettings.from_config(loaded.config.destination.postgres))
    m = NdjsonDriver.for_config(loaded, dest)
    try:
        m.open()
        m.run_once()
    finally:
        m.close()
        dest.close()
    return time.perf_counter() - start, dest.seconds


def afterload_config(
    work: Path, dsn: str, schema: str, name: str, source: Path, max_docs: int
) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    config = {
        "name": name,
        "destination": {"postgres": {"dsn": dsn, "schema": schema}},
        "bindings": [{"source": str(source), "table": "orders", "key": ["/id"]}],
        "transaction": {"max_documents": max_docs, "max_bytes": 1 << 30},
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def machine(conn: psycopg.Connection[Any]) -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    row = conn.execute("SHOW server_version").fetchone()
    return (
        f"{os.cpu_count()} CPUs, {mem:.0f} GiB RAM; Python {platform.python_version()}, "
        f"PostgreSQL {row[0] if row else '?'}, psycopg {psycopg.__version__} "
        f"({psycopg.pq.__impl__}), orjson {orjson.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--updates", type=int, default=200_000)
    parser.add_argument("--max-documents", type=int, default=200_000)
    args = parser.parse_args()

    orders, updates = standard_inputs(args.docs, args.updates)
    schema = "bench_" + secrets.token_hex(4)
    work = DATA / "work-postgres"
    shutil.rmtree(work, ignore_errors=True)
    stamp = datetime.now(UTC).isoformat()
    conn = psycopg.connect(args.dsn)
    conn.execute(f"CREATE SCHEMA {schema}")
    conn.execute(f"SET search_path = {schema}")
    conn.commit()
    results: list[tuple[str, str, str]] = []

    def row(name: str, seconds: float, count: int) -> None:
        results.append((name, f"{seconds:.2f} s", f"{count / seconds:,.0f} docs/s"))
        print(*results[-1], sep="  ", flush=True)

    try:
        # 1. Into an empty table with its primary key.
        pre = list(copy_lines(orders, stamp))
        create(conn, "copy_pre")
        checkpoint(conn)
        t_pre = timed(copy_committed(conn, "copy_pre", pre))
        row("COPY, rows formatted beforehand", t_pre, args.docs)
        pre.clear()
        create(conn, "copy_hand")
        checkpoint(conn)
        t_hand = timed(copy_committed(conn, "copy_hand", copy_lines(orders, stamp)))
        row("COPY, hand-written loader (parse+COPY)", t_hand, args.docs)
        checkpoint(conn)
        load_cfg = afterload_config(work, args.dsn, schema, "load", orders, args.max_documents)
        t_load, in_dest = run_afterload(load_cfg, args.dsn, schema)
        row("afterload run --once, empty table", t_load, args.docs)
        results.append(("  of which in the destination", f"{in_dest:.2f} s", ""))
        results.append(
            ("  ratio to COPY formatted beforehand (bar ≥ 50%)", f"{t_pre / t_load:.0%}", "")
        )
        results.append(("  ratio to hand-written loader", f"{t_hand / t_load:.0%}", ""))

        # 2. 200k upserts into the 1M-row table.
        stage = "CREATE TEMP TABLE stage (LIKE copy_hand) ON COMMIT DROP"
        merge = (
            f"INSERT INTO copy_hand ({NAMES}) SELECT {NAMES} FROM stage "
            "ON CONFLICT (id) DO UPDATE SET "
            + ", ".join(f"{n} = EXCLUDED.{n}" for n, _ in COLUMNS[1:])
        )

        def hand_upsert() -> None:
            conn.execute(stage)
            copy_into(conn, "stage", copy_lines(updates, stamp, reduce=True))
            conn.execute(merge)
            conn.commit()

        checkpoint(conn)
        t_hand_up = timed(hand_upsert)
        row("COPY to temp + INSERT … ON CONFLICT", t_hand_up, args.updates)
        checkpoint(conn)
        up_cfg = afterload_config(work, args.dsn, schema, "upsert", updates, args.max_documents)
        t_up, up_dest = run_afterload(up_cfg, args.dsn, schema)
        row("afterload run --once, upsert", t_up, args.updates)
        results.append(("  of which in the destination", f"{up_dest:.2f} s", ""))
        results.append(("  ratio (bar ≤ 2×)", f"{t_up / t_hand_up:.2f}×", ""))
        got = conn.execute("SELECT count(*) FROM orders").fetchone()
        want = conn.execute("SELECT count(*) FROM copy_hand").fetchone()
        conn.commit()
        differ = conn.execute(
            "SELECT count(*) FROM orders o FULL JOIN copy_hand h USING (id) "
            "WHERE o.flow_document IS DISTINCT FROM h.flow_document"
        ).fetchone()
        conn.commit()
        if got != want or differ != (0,):
            raise SystemExit(f"tables differ: rows {got} vs {want}, {differ} documents differ")
        desc = machine(conn)
    finally:
        conn.rollback()
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.commit()
        conn.close()
        shutil.rmtree(work, ignore_errors=True)

    mib = orders.stat().st_size / (1 << 20)
    print(f"\n{desc}\n{args.docs:,} docs ({mib:.0f} MiB), transactions of {args.max_documents:,}")
    width = max(len(r[0]) for r in results)
    for name, a, b in results:
        print(f"{name:<{width}}  {a:>10}  {b}")


if __name__ == "__main__":
    main()
