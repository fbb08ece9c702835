"""The native bulk path (the ceiling) for bench/run.py: one load in its own process.

    .venv/bin/python bench/native_load.py duckdb DB_FILE append|merge|upsert FILE.jsonl
    .venv/bin/python bench/native_load.py postgres DSN append|merge|upsert FILE.tsv --schema S

DuckDB parses the NDJSON itself (``read_json``). PostgreSQL has no NDJSON reader, so its ceiling
is ``COPY`` of rows converted to COPY text beforehand (bench/run.py prepares them once, untimed),
into a table typed like the documents; the upsert copies into a staging table and merges with
``INSERT … ON CONFLICT``, keeping the last document of each key as afterload does.

Prints one JSON line: the seconds from connecting to the committed result.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

PG_COLUMNS = [
    ("id", "BIGINT NOT NULL"),
    ("customer", "TEXT"),
    ("amount", "DOUBLE PRECISION"),
    ("created_at", "TIMESTAMPTZ"),
    ("shipping", "JSONB"),
    ("tags", "JSONB"),
    ("status", "TEXT"),
]
PG_NAMES = ", ".join(name for name, _ in PG_COLUMNS)


def duckdb_load(target: str, case: str, source: str) -> None:
    import duckdb

    con = duckdb.connect(target)
    scan = f"read_json('{source}')"
    if case == "append":
        con.execute(f"CREATE TABLE orders AS SELECT * FROM {scan}")
    elif case == "merge":
        con.execute(f"CREATE TABLE orders AS SELECT * FROM {scan} LIMIT 0")
        con.execute("ALTER TABLE orders ADD PRIMARY KEY (id)")
        con.execute(f"INSERT INTO orders SELECT * FROM {scan}")
    else:
        con.execute(f"INSERT OR REPLACE INTO orders SELECT * FROM {scan}")
    con.close()


def copy_file(cur: object, table: str, source: str) -> None:
    with open(source, "rb") as f, cur.copy(f"COPY {table} ({PG_NAMES}) FROM STDIN") as copy:  # type: ignore[attr-defined]
        while chunk := f.read(1 << 20):
            copy.write(chunk)


def postgres_load(dsn: str, case: str, source: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, options=f"-c search_path={schema}") as conn, conn.cursor() as cur:
        cols = ", ".join(f"{n} {t}" for n, t in PG_COLUMNS)
        if case == "append":
            cur.execute(f"CREATE TABLE orders ({cols})")
            copy_file(cur, "orders", source)
        elif case == "merge":
            cur.execute(f"CREATE TABLE orders ({cols}, PRIMARY KEY (id))")
            copy_file(cur, "orders", source)
        else:
            cur.execute("CREATE TEMP TABLE stage (LIKE orders) ON COMMIT DROP")
            cur.execute("ALTER TABLE stage ADD COLUMN n BIGSERIAL")  # the order of the lines
            copy_file(cur, "stage", source)
            updates = ", ".join(f"{n} = EXCLUDED.{n}" for n, _ in PG_COLUMNS[1:])
            cur.execute(
                f"INSERT INTO orders ({PG_NAMES}) "
                f"SELECT DISTINCT ON (id) {PG_NAMES} FROM stage ORDER BY id, n DESC "
                f"ON CONFLICT (id) DO UPDATE SET {updates}"
            )
        conn.commit()


def main() -> int:
    destination, target, case, source = sys.argv[1:5]
    if case not in ("append", "merge", "upsert"):
        raise SystemExit(f"unknown case {case!r}")
    start = time.perf_counter()
    if destination == "duckdb":
        duckdb_load(target, case, str(Path(source).resolve()))
    else:
        schema = sys.argv[sys.argv.index("--schema") + 1]
        postgres_load(target, case, source, schema)
    print(json.dumps({"seconds": time.perf_counter() - start}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
