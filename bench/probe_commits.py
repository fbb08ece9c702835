"""Whether the SQL a commit runs is at DuckDB's own speed, apart from the process around it.

    PYTHONPATH=src .venv/bin/python bench/probe_commits.py [--repeat 3]

A probe, not a benchmark of `make bench`: in one process, the 1 M orders lines go into a
DuckDB file three ways, each side's wall and CPU (DuckDB's threads included), medians of
interleaved repeats — one ``INSERT … SELECT`` of the whole file (the ceiling's statement); the
same statement per 200 k-line transaction; and per transaction the statements afterload's
writer runs for a keyed table it created (the insert, the repeated-key check, the merge
``DELETE … USING`` against older rows, the commit). No survey, no start-up: what is left of a
whole run's time beyond these is the process, the survey and how they overlap.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_duckdb import standard_inputs  # noqa: E402

STRUCT = (
    '{"id": "BIGINT", "customer": "VARCHAR", "amount": "DOUBLE", "created_at": "TIMESTAMPTZ", '
    '"shipping": "JSON", "tags": "JSON", "status": "VARCHAR"}'
)
COLUMNS = "id, customer, amount, created_at, shipping, tags, status"
DDL = (
    "CREATE TABLE t (id BIGINT NOT NULL, customer VARCHAR, amount DOUBLE, "
    "created_at TIMESTAMPTZ, shipping JSON, tags JSON, status VARCHAR, "
    "flow_document JSON NOT NULL USING COMPRESSION zstd, flow_published_at TIMESTAMPTZ NOT NULL)"
)


def insert(source: str) -> str:
    values = ", ".join(f"s['{c.strip()}']" for c in COLUMNS.split(",")) + ", json, now()"
    return (
        f"INSERT INTO t ({COLUMNS}, flow_document, flow_published_at) SELECT {values} FROM "
        f"(SELECT json_transform(json, '{STRUCT}') AS s, json FROM read_json_objects("
        f"'{source}', format='newline_delimited'))"
    )


def side(db: Path, chunks: list[Path], whole: Path, how: str) -> tuple[float, float]:
    for p in (db, Path(f"{db}.wal")):
        p.unlink(missing_ok=True)
    wall, cpu = time.perf_counter(), time.process_time()
    con = duckdb.connect(str(db))
    con.execute(DDL)
    if how == "one statement":
        con.execute(insert(str(whole)))
    else:
        for i, chunk in enumerate(chunks):
            con.execute("BEGIN")
            before = con.execute("SELECT coalesce(max(rowid), -1) FROM t").fetchall()[0][0]
            con.execute(insert(str(chunk)))
            if how == "per transaction, as the writer":
                new = f"SELECT rowid AS r, id FROM t WHERE rowid > {before}"
                con.execute(f"SELECT count(*) FROM (SELECT DISTINCT id FROM ({new}))").fetchall()
                if i:
                    con.execute(
                        f"DELETE FROM t USING ({new}) n WHERE t.rowid <= {before} AND t.id = n.id"
                    )
            con.execute("COMMIT")
    con.close()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    orders, _ = standard_inputs(1_000_000, 200_000)
    with tempfile.TemporaryDirectory(prefix="probe-commits-") as tmp:
        work = Path(tmp)
        chunks = []
        with open(orders, "rb") as src:
            lines = src.readlines()
        for i in range(0, len(lines), 200_000):
            chunk = work / f"chunk-{i // 200_000}.jsonl"
            chunk.write_bytes(b"".join(lines[i : i + 200_000]))
            chunks.append(chunk)
        del lines
        sides = ["one statement", "per transaction, insert only", "per transaction, as the writer"]
        runs: dict[str, list[tuple[float, float]]] = {s: [] for s in sides}
        load0 = os.getloadavg()
        for rep in range(args.repeat):
            k = rep % len(sides)
            for how in sides[k:] + sides[:k]:
                runs[how].append(side(work / "t.duckdb", chunks, orders, how))
        load1 = os.getloadavg()
    print(
        f"1 M orders, DuckDB {duckdb.__version__}, {os.cpu_count()} CPUs, medians of "
        f"{args.repeat}; load average {load0[0]:.2f} -> {load1[0]:.2f}\n"
    )
    print("| side | wall s | CPU s |\n| --- | --- | --- |")
    for how, r in runs.items():
        wall = statistics.median(w for w, _ in r)
        cpu = statistics.median(c for _, c in r)
        print(f"| {how} | {wall:.2f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()
