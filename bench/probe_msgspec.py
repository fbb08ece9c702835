"""A probe, not a benchmark of ``make bench``: the DuckDB survey of one 200 k-line transaction of
orders lines whose columns the table already has, against msgspec's typed ``decode_lines`` of
the same block, in-process, interleaved (bench/RESULTS.md, "Phase 5"). msgspec is not a
dependency of afterload: ``pip install msgspec`` first.

    PYTHONPATH=src .venv/bin/python bench/probe_msgspec.py
"""

from __future__ import annotations

import os
import random
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated

import orjson

from afterload.core.schema import TableShape
from afterload.destinations.duckdb.survey import Surveyor

try:
    import msgspec
except ImportError:
    sys.exit("this probe needs msgspec (pip install msgspec), which afterload does not depend on")

CITIES = ["Berlin", "Paris", "Lyon", "Oslo"]
TAGS = ["gift", "rush", "fragile", "bulk"]
REPEATS = 5


def orders(count: int, first: int) -> bytes:
    rng = random.Random(first)
    base = datetime(2025, 1, 1, tzinfo=UTC)
    lines = []
    for key in range(first, first + count):
        doc = {
            "id": key,
            "customer": f"cust-{rng.randrange(100_000):06d}",
            "amount": round(rng.uniform(1, 500), 2),
            "created_at": (base + timedelta(seconds=key * 7)).isoformat().replace("+00:00", "Z"),
            "shipping": {"city": rng.choice(CITIES), "zip": f"{rng.randrange(99_999):05d}"},
            "tags": rng.sample(TAGS, rng.randrange(0, 3)),
            "status": rng.choice(["new", "paid", "shipped"]),
        }
        lines.append(orjson.dumps(doc))
    return b"\n".join(lines)


Int = Annotated[int, msgspec.Meta(ge=-(10**15) + 1, le=10**15 - 1)]


class Order(msgspec.Struct, forbid_unknown_fields=True):
    id: Int | None = None
    customer: str | None = None
    amount: float | None = None
    created_at: str | None = None
    shipping: msgspec.Raw = msgspec.Raw(b"null")
    tags: msgspec.Raw = msgspec.Raw(b"null")
    status: str | None = None


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    first, block = orders(1000, 0), orders(200_000, 1000)
    shape = TableShape("orders", ["/id"], delta=False)
    surveyor = Surveyor()
    assert surveyor.survey(shape, ["/id"], [first], hard_delete=False) is not None
    decoder = msgspec.json.Decoder(Order)
    times: dict[str, list[tuple[float, float]]] = {"survey": [], "msgspec": []}
    for rep in range(REPEATS):
        for side in ("survey", "msgspec") if rep % 2 == 0 else ("msgspec", "survey"):
            wall, used = time.perf_counter(), cpu()
            if side == "survey":
                assert surveyor.survey(shape, ["/id"], [block], hard_delete=False) is not None
            else:
                decoder.decode_lines(block + b"\n")
            times[side].append((time.perf_counter() - wall, cpu() - used))
    surveyor.close()
    for side, found in times.items():
        walls = sorted(w for w, _ in found)
        cpus = sorted(c for _, c in found)
        mid = REPEATS // 2
        print(f"{side:8} wall median {walls[mid]:.3f} s, CPU median {cpus[mid]:.3f} s")
    print("load average", os.getloadavg())


if __name__ == "__main__":
    main()
