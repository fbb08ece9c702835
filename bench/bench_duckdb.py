"""DuckDB materialization benchmark: afterload against DuckDB's own read_json, side by side.

    .venv/bin/python bench/bench_duckdb.py [--docs 1000000] [--updates 200000] [--rss-factor 5]

Generated data is cached under bench/data/ (git-ignored). Not a test: it prints a table.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import orjson
import yaml

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
TAGS = ["new", "vip", "gift", "promo", "bulk", "retail", "web", "store"]
CITIES = ["Paris", "Berlin", "Oslo", "Lima", "Tokyo", "Accra"]


def standard_inputs(docs: int, updates: int) -> tuple[Path, Path]:
    """The benchmarks' shared data: the orders, and updates whose keys mostly exist."""
    orders = generate(DATA / f"orders-{docs}.jsonl", docs, seed=1)
    changes = generate(
        DATA / f"updates-{updates}.jsonl",
        updates,
        seed=2,
        id_space=docs + docs // 4,  # about 80% of the keys exist, 20% are new
    )
    return orders, changes


def generate(path: Path, count: int, *, seed: int, first_id: int = 0, id_space: int = 0) -> Path:
    """Order-like documents of about 180 bytes; ids are sequential unless ``id_space`` is set."""
    if path.exists():
        return path
    rng = random.Random(seed)
    base = datetime(2025, 1, 1, tzinfo=UTC)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as f:
        buf = []
        for i in range(count):
            key = rng.randrange(id_space) if id_space else first_id + i
            created = base + timedelta(seconds=key * 7)
            doc = {
                "id": key,
                "customer": f"cust-{rng.randrange(100_000):06d}",
                "amount": round(rng.uniform(1, 500), 2),
                "created_at": created.isoformat().replace("+00:00", "Z"),
                "shipping": {"city": rng.choice(CITIES), "zip": f"{rng.randrange(99_999):05d}"},
                "tags": rng.sample(TAGS, rng.randrange(0, 3)),
                "status": rng.choice(["new", "paid", "shipped"]),
            }
            buf.append(orjson.dumps(doc))
            if len(buf) == 10_000:
                f.write(b"\n".join(buf) + b"\n")
                buf.clear()
        if buf:
            f.write(b"\n".join(buf) + b"\n")
    tmp.rename(path)
    return path


def fresh_db(path: Path) -> duckdb.DuckDBPyConnection:
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)
    return duckdb.connect(str(path))


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def afterload_config(workdir: Path, max_documents: int, memory_limit: str | None = None) -> Path:
    duck: dict[str, str] = {"path": "afterload.duckdb"}
    if memory_limit is not None:
        duck["memory_limit"] = memory_limit
    config = {
        "name": "bench",
        "destination": {"duckdb": duck},
        "bindings": [{"source": "in/*.jsonl", "table": "orders", "key": ["/id"]}],
        "transaction": {"max_documents": max_documents, "max_bytes": 1 << 30},
    }
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "afterload.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_afterload(config: Path) -> tuple[float, int]:
    """One ``run --once`` in a child process: seconds and peak RSS in KiB."""
    code = (
        "import sys; from afterload.config import load_config;"
        "from afterload.cli.run import run_materialization;"
        f"sys.exit(run_materialization(load_config({str(config)!r}), once=True))"
    )
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code])
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"afterload failed on {config}")
    return elapsed, usage.ru_maxrss


def link(workdir: Path, *files: Path) -> None:
    (workdir / "in").mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(files):
        target = workdir / "in" / f"{i:02d}-{f.name}"
        if not target.exists():
            target.symlink_to(f)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--updates", type=int, default=200_000)
    parser.add_argument("--rss-factor", type=int, default=5)
    parser.add_argument("--max-documents", type=int, default=200_000)
    parser.add_argument("--memory-limit", default="512MB")
    args = parser.parse_args()

    orders, updates = standard_inputs(args.docs, args.updates)
    big_count = args.docs * args.rss_factor
    big = generate(DATA / f"orders-{big_count}.jsonl", big_count, seed=3)
    work = DATA / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    mib = orders.stat().st_size / (1 << 20)
    results: list[tuple[str, str, str]] = []

    # 1. An empty table: DuckDB's CTAS from read_json against afterload's standard updates.
    con = fresh_db(work / "baseline.duckdb")
    ctas = timed(lambda: con.execute(f"CREATE TABLE t AS SELECT * FROM read_json('{orders}')"))
    results.append(("read_json CTAS, 1 table", f"{ctas:.2f} s", f"{args.docs / ctas:,.0f} docs/s"))
    con.execute("CREATE TABLE u AS SELECT * FROM t LIMIT 0")
    con.execute("ALTER TABLE u ADD PRIMARY KEY (id)")
    con.execute("INSERT INTO u SELECT * FROM t")
    upsert = timed(
        lambda: con.execute(f"INSERT OR REPLACE INTO u SELECT * FROM read_json('{updates}')")
    )
    con.close()

    aw = work / "afterload"
    config = afterload_config(aw, args.max_documents)
    link(aw, orders)
    load, _ = run_afterload(config)
    results.append(("afterload, empty table", f"{load:.2f} s", f"{args.docs / load:,.0f} docs/s"))
    results.append(("  ratio (bar ≥ 50%)", f"{ctas / load:.0%}", ""))
    link(aw, orders, updates)
    ours_upsert, _ = run_afterload(config)
    results.append(("INSERT OR REPLACE read_json", f"{upsert:.2f} s", f"{args.updates:,} docs"))
    results.append(("afterload upsert", f"{ours_upsert:.2f} s", f"{args.updates:,} docs"))
    results.append(("  ratio (bar ≤ 2×)", f"{ours_upsert / upsert:.2f}×", ""))

    # Peak RSS: DuckDB caches table blocks up to its memory_limit (80% of RAM by default),
    # so the bound is the transaction plus that limit; the runs set it to show it holds.
    limit = args.memory_limit
    sw = work / "afterload-small"
    link(sw, orders)
    _, small_rss = run_afterload(afterload_config(sw, args.max_documents, limit))
    bw = work / "afterload-big"
    link(bw, big)
    big_time, big_rss = run_afterload(afterload_config(bw, args.max_documents, limit))
    results.append(
        (f"peak RSS, {args.docs:,} docs", f"{small_rss / 1024:.0f} MiB", f"{mib:.0f} MiB in")
    )
    results.append(
        (
            f"peak RSS, {big_count:,} docs",
            f"{big_rss / 1024:.0f} MiB",
            f"{big.stat().st_size / (1 << 20):.0f} MiB in, {big_time:.1f} s",
        )
    )
    results.append(("  (DuckDB memory_limit)", limit, ""))

    width = max(len(r[0]) for r in results)
    print(
        f"\nDuckDB {duckdb.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; {args.docs:,} docs, {mib:.0f} MiB; "
        f"transactions of {args.max_documents:,} documents"
    )
    for name, a, b in results:
        print(f"{name:<{width}}  {a:>10}  {b}")


if __name__ == "__main__":
    main()
