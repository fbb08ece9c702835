"""The benchmark's input files: generated once, cached in bench/data/, copied as text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson
from bench_duckdb import standard_inputs


@dataclass
class Data:
    docs: int
    updates: int
    orders: Path
    update_file: Path
    orders_tsv: Path
    updates_tsv: Path
    upsert_rows: int  # rows after the upsert: the union of both files' keys

    @property
    def mib(self) -> float:
        return self.orders.stat().st_size / (1 << 20)


def esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def copy_text(source: Path) -> Path:
    """The documents as COPY text rows for the native PostgreSQL path, made once and cached."""
    target = source.with_suffix(".copy.tsv")
    if target.exists():
        return target
    tmp = target.with_suffix(".part")
    dumps = orjson.dumps
    with open(source, "rb") as f, open(tmp, "w") as out:
        rows: list[str] = []
        for raw in f:
            d = orjson.loads(raw)
            rows.append(
                f"{d['id']}\t{esc(d['customer'])}\t{d['amount']!r}\t{d['created_at']}\t"
                f"{esc(dumps(d['shipping']).decode())}\t{esc(dumps(d['tags']).decode())}\t"
                f"{esc(d['status'])}\n"
            )
            if len(rows) == 10_000:
                out.write("".join(rows))
                rows.clear()
        out.write("".join(rows))
    tmp.rename(target)
    return target


def prepare_data(docs: int, updates: int) -> Data:
    orders, update_file = standard_inputs(docs, updates)
    with open(update_file, "rb") as f:
        new_keys = {orjson.loads(line)["id"] for line in f}
    upsert_rows = docs + sum(1 for k in new_keys if k >= docs)
    return Data(
        docs,
        updates,
        orders,
        update_file,
        copy_text(orders),
        copy_text(update_file),
        upsert_rows,
    )
