"""Issue 12, phase 1: the SQL hot path against DuckDB's own ceilings, side by side.

    .venv/bin/python bench/bench_sqlpath.py [--docs 1000000] [--repeat 3] [--only orders,flat]

Every case runs in this process on a fresh DuckDB file; cases are interleaved per repeat and
the median of the repeats is printed with wall and CPU time (CPU = this process, DuckDB's
threads included). Not a test: it prints a table.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import sqlpath_prototype as sqlpath  # noqa: E402
from bench_duckdb import DATA, standard_inputs  # noqa: E402

from afterload.core.schema import TableShape  # noqa: E402

TXN = 200_000


def gen(name: str, count: int, make: Callable[[random.Random, int], dict[str, object]]) -> Path:
    path = DATA / f"{name}-{count}.jsonl"
    if path.exists():
        return path
    rng = random.Random(7)
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as f:
        for start in range(0, count, 10_000):
            chunk = [orjson.dumps(make(rng, i)) for i in range(start, min(count, start + 10_000))]
            f.write(b"\n".join(chunk) + b"\n")
    tmp.rename(path)
    return path


BASE = datetime(2025, 1, 1, tzinfo=UTC)


def flat(rng: random.Random, i: int) -> dict[str, object]:
    return {
        "id": i,
        **{f"n{j}": rng.randrange(1 << 40) for j in range(4)},
        **{f"f{j}": rng.random() * 1000 for j in range(3)},
        "s": f"name-{rng.randrange(10**6)}",
        "b": rng.random() < 0.5,
    }


def nested(rng: random.Random, i: int) -> dict[str, object]:
    return {
        "id": f"k-{i:09d}",
        "ts": (BASE + timedelta(seconds=i)).isoformat(),
        "user": {
            "name": f"u{rng.randrange(1000)}",
            "geo": {"lat": rng.random(), "lon": rng.random()},
        },
        "items": [
            {"sku": rng.randrange(10**5), "qty": rng.randrange(1, 9)}
            for _ in range(rng.randrange(4))
        ],
        "labels": [f"l{rng.randrange(20)}" for _ in range(rng.randrange(5))],
    }


def longstr(rng: random.Random, i: int) -> dict[str, object]:
    return {"id": i, "body": "".join(rng.choices("abcdefghij ", k=2000)), "n": i}


def shapes(docs: int) -> dict[str, Path]:
    orders, _ = standard_inputs(docs, docs // 5)
    return {
        "orders": orders,
        "flat": gen("flat", docs, flat),
        "nested": gen("nested", docs, nested),
        "longstr": gen("longstr", docs // 5, longstr),
    }


def fresh(path: Path) -> duckdb.DuckDBPyConnection:
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)
    return duckdb.connect(str(path))


def infer(lines: list[bytes], work: Path) -> TableShape:
    con = duckdb.connect()
    stage = work / "infer.jsonl"
    longest = sqlpath.stage_lines(stage, lines[:TXN])
    shape = TableShape("t", ["/id"], delta=False)
    verdict = sqlpath.check(con, stage, longest, shape, unchecked_deletes=False)
    assert verdict.fast and verdict.shape is not None, verdict.reason
    con.close()
    return verdict.shape


def ddl(shape: TableShape, *, pk: bool, compression: str | None) -> str:
    defs = [f"{sqlpath.quote(c.name)} {c.type.value}" for c in shape.ordered()]
    using = f" USING COMPRESSION {compression}" if compression else ""
    defs += [f"flow_document JSON NOT NULL{using}", "flow_published_at TIMESTAMPTZ NOT NULL"]
    if pk:
        defs.append('PRIMARY KEY ("id")')
    return "CREATE TABLE t (" + ", ".join(defs) + ")"


def insert_select(shape: TableShape, source: str, verb: str = "INSERT") -> str:
    cols = [c.name for c in shape.ordered()]
    structure = orjson.dumps({c: shape.columns[c].type.value for c in cols}).decode()
    target = ", ".join([*(sqlpath.quote(c) for c in cols), "flow_document", "flow_published_at"])
    values = ", ".join([*(f"s[{sqlpath.literal(c)}]" for c in cols), "json", "now()"])
    return (
        f"{verb} INTO t ({target}) SELECT {values} FROM (SELECT json_transform(json, "
        f"{sqlpath.literal(structure)}) AS s, json FROM "
        f"read_json_objects({sqlpath.literal(source)}, format='newline_delimited'))"
    )


def prototype(
    con: duckdb.DuckDBPyConnection, path: Path, shape: TableShape, work: Path, *, keyed: str
) -> TableShape:
    """The hot path as the runtime would run it: split lines, stage, check, reduce, write."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    del data
    stage = work / "stage.jsonl"
    for start in range(0, len(lines), TXN):
        chunk = lines[start : start + TXN]
        longest = sqlpath.stage_lines(stage, chunk)
        con.begin()
        verdict = sqlpath.check(con, stage, longest, shape, unchecked_deletes=False)
        if not verdict.fast or verdict.shape is None:
            raise SystemExit(f"{path.name}: the fast path declined: {verdict.reason}")
        shape = verdict.shape
        for sql in sqlpath.merge_sql(
            "t", shape, verdict, "2025-01-01T00:00:00Z", keyed=keyed, hard_delete=False
        ):
            con.execute(sql)
        con.commit()
    return shape


def upserts(
    files: dict[str, Path],
    inferred: dict[str, TableShape],
    work: Path,
    db: Path,
    results: dict[tuple[str, str], list[tuple[float, float]]],
) -> None:
    """200 k updates (80 % existing keys) into the orders table, with and without a key."""
    if "orders" not in files:
        return
    orders = files["orders"]
    docs = int(orders.stem.split("-")[1])
    _, updates = standard_inputs(docs, docs // 5)
    shape = inferred["orders"]
    cols = [c.name for c in shape.ordered()]
    structure = orjson.dumps({c: shape.columns[c].type.value for c in cols}).decode()
    target = ", ".join([*(sqlpath.quote(c) for c in cols), "flow_document", "flow_published_at"])
    values = ", ".join([*(f"s[{sqlpath.literal(c)}]" for c in cols), "json", "now()"])
    reduced = (
        f"SELECT s, json FROM (SELECT row_number() OVER () AS n, json_transform(json, "
        f"{sqlpath.literal(structure)}) AS s, json FROM read_json_objects('{updates}', "
        "format='newline_delimited')) "
        "QUALIFY row_number() OVER (PARTITION BY s.id ORDER BY n DESC) = 1"
    )
    native_pk = [f"INSERT OR REPLACE INTO t ({target}) SELECT {values} FROM ({reduced})"]
    native_nopk = [
        f"CREATE TEMP TABLE r AS {reduced}",
        "DELETE FROM t USING r WHERE t.id = r.s.id",
        f"INSERT INTO t ({target}) SELECT {values} FROM r",
    ]
    variants: list[tuple[str, bool, Callable[[duckdb.DuckDBPyConnection], object]]] = [
        (
            "upsert SQL, PK, INSERT OR REPLACE",
            True,
            lambda con: [con.execute(q) for q in native_pk],
        ),
        (
            "upsert SQL, no PK, DELETE USING+INSERT",
            False,
            lambda con: [con.execute(q) for q in native_nopk],
        ),
        (
            "upsert prototype, PK (replace)",
            True,
            lambda con: prototype(con, updates, shape, work, keyed="replace"),
        ),
        (
            "upsert prototype, no PK (delete+insert)",
            False,
            lambda con: prototype(con, updates, shape, work, keyed="delete"),
        ),
    ]
    for label, pk, fn in variants:
        con = fresh(db)
        con.execute(ddl(shape, pk=pk, compression=None))
        con.execute(insert_select(shape, str(orders)))
        con.execute("CHECKPOINT")
        w, c = measure(lambda fn=fn, con=con: (fn(con), con.execute("CHECKPOINT")))
        rows = con.execute("SELECT count(*), count(DISTINCT id) FROM t").fetchone()
        assert rows is not None and rows[0] == rows[1], rows
        con.close()
        results.setdefault(("orders", label), []).append((w, c))


def measure(fn: Callable[[], object]) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    work = DATA / "work-sqlpath"
    work.mkdir(parents=True, exist_ok=True)
    files = shapes(args.docs)
    if args.only:
        files = {k: v for k, v in files.items() if k in args.only.split(",")}
    db = work / "b.duckdb"
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    inferred = {
        name: infer(p.read_bytes().split(b"\n", TXN)[:TXN], work) for name, p in files.items()
    }

    def case(
        name: str, label: str, fn: Callable[[duckdb.DuckDBPyConnection], object], setup: str = ""
    ) -> None:
        con = fresh(db)
        if setup:
            con.execute(setup)
        w, c = measure(lambda: fn(con))
        con.close()
        results.setdefault((name, label), []).append((w, c))

    load_before = Path("/proc/loadavg").read_text().split()[:3]
    for rep in range(args.repeat):
        for name, path in files.items():
            shape = inferred[name]
            src = str(path)
            cases: list[tuple[str, Callable[[duckdb.DuckDBPyConnection], object], str]] = [
                (
                    "CTAS read_json",
                    lambda con, s=src: con.execute(
                        f"CREATE TABLE t AS SELECT * FROM read_json('{s}')"
                    ),
                    "",
                ),
                (
                    "INSERT…SELECT, PK, default",
                    lambda con, s=src, sh=shape: con.execute(insert_select(sh, s)),
                    ddl(shape, pk=True, compression=None),
                ),
                (
                    "INSERT…SELECT, no PK, default",
                    lambda con, s=src, sh=shape: con.execute(insert_select(sh, s)),
                    ddl(shape, pk=False, compression=None),
                ),
                (
                    "INSERT…SELECT, no PK, zstd",
                    lambda con, s=src, sh=shape: con.execute(insert_select(sh, s)),
                    ddl(shape, pk=False, compression="zstd"),
                ),
                (
                    "INSERT…SELECT, no PK, uncompressed",
                    lambda con, s=src, sh=shape: con.execute(insert_select(sh, s)),
                    ddl(shape, pk=False, compression="uncompressed"),
                ),
                (
                    "prototype, no PK, default",
                    lambda con, p=path, sh=shape: prototype(con, p, sh, work, keyed="none"),
                    ddl(shape, pk=False, compression=None),
                ),
                (
                    "prototype, no PK, zstd",
                    lambda con, p=path, sh=shape: prototype(con, p, sh, work, keyed="none"),
                    ddl(shape, pk=False, compression="zstd"),
                ),
                (
                    "prototype, PK, default",
                    lambda con, p=path, sh=shape: prototype(con, p, sh, work, keyed="none"),
                    ddl(shape, pk=True, compression=None),
                ),
            ]
            order = cases[rep % len(cases) :] + cases[: rep % len(cases)]
            for label, fn, setup in order:
                case(name, label, fn, setup)
            print(f"repeat {rep + 1}: {name} done", file=sys.stderr, flush=True)
        upserts(files, inferred, work, db, results)
    load_after = Path("/proc/loadavg").read_text().split()[:3]

    print(
        f"\nDuckDB {duckdb.__version__}, {os.cpu_count()} CPUs, transactions of {TXN:,}; "
        f"median of {args.repeat} interleaved; "
        f"loadavg before {' '.join(load_before)}, after {' '.join(load_after)}"
    )
    print(f"{'shape':8} {'case':38} {'wall s':>7} {'cpu s':>7}  spread(wall)")
    for (name, label), runs in results.items():
        w = statistics.median(r[0] for r in runs)
        c = statistics.median(r[1] for r in runs)
        lo, hi = min(r[0] for r in runs), max(r[0] for r in runs)
        print(f"{name:8} {label:38} {w:7.2f} {c:7.2f}  {lo:.2f}–{hi:.2f}")


if __name__ == "__main__":
    main()
