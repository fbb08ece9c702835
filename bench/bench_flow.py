"""The Flow connector against the NDJSON driver: the same documents into the same destination.

    .venv/bin/python bench/bench_flow.py [--docs 1000000] [--txn 200000] [--dest duckdb,postgres]

The request stream (Open, the recovery Acknowledge, then per transaction Flush, Stores with
packed keys and values, StartCommit, Acknowledge) is generated once from the NDJSON
benchmark's orders and cached under bench/data/; the connector reads it from a file, as
it would from the runtime's pipe, and its responses go to /dev/null. A backfill, as Flow's
runtime sends it: no Loads (no key was ever stored). Not a test: it prints a table.
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from bench_duckdb import DATA, standard_inputs  # noqa: E402

from afterload.flow.tuples import pack  # noqa: E402

POSTGRES_DSN = os.environ.get(
    "AFTERLOAD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
FIELDS = ["customer", "amount", "created_at", "shipping", "tags", "status"]
TYPES = {
    "id": ["integer"],
    "customer": ["string"],
    "amount": ["number"],
    "created_at": ["string"],
    "shipping": ["object"],
    "tags": ["array"],
    "status": ["string"],
}


def _binding() -> dict[str, Any]:
    projections = [
        {
            "ptr": "/id",
            "field": "id",
            "isPrimaryKey": True,
            "inference": {"types": ["integer"], "exists": "MUST"},
        }
    ]
    for f in FIELDS:
        projections.append({"ptr": "/" + f, "field": f, "inference": {"types": TYPES[f]}})
    projections.append({"ptr": "", "field": "flow_document", "inference": {"types": ["object"]}})
    return {
        "resourceConfig": {"table": "orders"},
        "resourcePath": ["orders"],
        "collection": {"name": "bench/orders", "key": ["/id"], "projections": projections},
        "fieldSelection": {"keys": ["id"], "values": FIELDS, "document": "flow_document"},
        "stateKey": "orders.v1",
    }


def stream(orders: Path, docs: int, txn: int) -> Path:
    """The cached request stream after the Open line (which names the destination)."""
    path = DATA / f"flow-{docs}-{txn}.jsonl"
    if path.exists():
        return path
    tmp = path.with_suffix(".part")
    b64 = base64.b64encode
    with open(orders, "rb") as src, open(tmp, "wb") as out:
        out.write(b'{"acknowledge":{}}\n')
        buf: list[bytes] = [b'{"flush":{}}']
        for n, line in enumerate(src, 1):
            doc = orjson.loads(line)
            key = b64(pack([doc["id"]]))
            values = b64(pack([doc.get(f) for f in FIELDS]))
            buf.append(
                b'{"store":{"binding":0,"keyPacked":"%s","valuesPacked":"%s","doc":%s}}'
                % (key, values, line.rstrip(b"\n"))
            )
            if n % txn == 0 or n == docs:
                cp = {"sources": {"bench/orders/journal": {"readThrough": str(n)}}}
                buf.append(orjson.dumps({"startCommit": {"runtimeCheckpoint": cp}}))
                buf.append(b'{"acknowledge":{}}')
                if n < docs:
                    buf.append(b'{"flush":{}}')
                out.write(b"\n".join(buf) + b"\n")
                buf = []
    tmp.rename(path)
    return path


def _timed(
    argv: list[str], stdin: Path | None = None, cwd: Path | None = None
) -> tuple[float, int]:
    start = time.perf_counter()
    with open(stdin or os.devnull, "rb") as inp, open(os.devnull, "wb") as out:
        proc = subprocess.Popen(argv, stdin=inp, stdout=out, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(argv)}")
    return elapsed, usage.ru_maxrss


def _destination(kind: str, work: Path) -> dict[str, Any]:
    if kind == "duckdb":
        db = work / f"flow-{secrets.token_hex(4)}.duckdb"
        return {"duckdb": {"path": str(db)}}
    return {"postgres": {"dsn": POSTGRES_DSN, "schema": f"bench_flow_{secrets.token_hex(4)}"}}


def _drop(block: dict[str, Any]) -> None:
    if "postgres" in block:
        import psycopg

        with psycopg.connect(POSTGRES_DSN, autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{block["postgres"]["schema"]}" CASCADE')
    else:
        for p in Path(block["duckdb"]["path"]).parent.glob(
            Path(block["duckdb"]["path"]).name + "*"
        ):
            p.unlink()


def run_flow(kind: str, body: Path, work: Path) -> tuple[float, int]:
    block = _destination(kind, work)
    opened = {
        "open": {
            "materialization": {
                "name": "bench/flow",
                "config": {"destination": block},
                "bindings": [_binding()],
            },
            "range": {"keyEnd": 0xFFFFFFFF, "rClockEnd": 0xFFFFFFFF},
        }
    }
    full = work / "flow-requests.jsonl"
    with open(full, "wb") as out, open(body, "rb") as src:
        out.write(orjson.dumps(opened) + b"\n")
        while chunk := src.read(1 << 24):
            out.write(chunk)
    try:
        return _timed([sys.executable, "-m", "afterload", "flow-connector"], stdin=full)
    finally:
        full.unlink()
        _drop(block)


def run_ndjson(kind: str, orders: Path, work: Path, txn: int) -> tuple[float, int]:
    import yaml

    block = _destination(kind, work)
    config = work / "ndjson.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "bench-ndjson",
                "destination": block,
                "transaction": {"max_documents": txn},
                "bindings": [{"source": str(orders), "table": "orders", "key": ["/id"]}],
            }
        )
    )
    try:
        return _timed([sys.executable, "-m", "afterload", "run", str(config), "--once"], cwd=work)
    finally:
        _drop(block)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--txn", type=int, default=200_000)
    ap.add_argument("--dest", default="duckdb,postgres")
    args = ap.parse_args()
    orders, _ = standard_inputs(args.docs, max(1, args.docs // 5))
    body = stream(orders, args.docs, args.txn)
    work = DATA / "flow-work"
    work.mkdir(exist_ok=True)
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f} at start; {args.docs:,} documents, "
        f"transactions of {args.txn:,}"
    )
    print("| destination | driver | seconds | documents/s | peak RSS MiB | flow / ndjson |")
    print("|---|---|---:|---:|---:|---:|")
    for kind in args.dest.split(","):
        nd_s, nd_rss = run_ndjson(kind, orders, work, args.txn)
        fl_s, fl_rss = run_flow(kind, body, work)
        for name, s, rss in (("ndjson", nd_s, nd_rss), ("flow-connector", fl_s, fl_rss)):
            ratio = f"{nd_s / fl_s:.0%}" if name != "ndjson" else ""
            print(
                f"| {kind} | {name} | {s:.1f} | {args.docs / s:,.0f} | {rss / 1024:.0f} | {ratio} |"
            )
    print(f"# load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
