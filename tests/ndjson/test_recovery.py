"""Exactly once across crashes: SIGKILL a loading process at many points, restart, compare."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.materialize_support import Warehouse, run_script, write_config, write_lines


def make_stream(tmp_path: Path, rng: random.Random) -> tuple[dict[int, Any], int, int]:
    """Three files of inserts, updates, deletes and a few bad lines; returns the expectation."""
    expected: dict[int, Any] = {}
    total = bad = 0
    for f in range(3):
        lines: list[Any] = []
        for _ in range(1500):
            key = rng.randrange(400)
            roll = rng.random()
            if roll < 0.01:
                lines.append("{broken")
                bad += 1
                continue
            if roll < 0.15:
                doc: dict[str, Any] = {"id": key, "_meta": {"op": "d"}}
                expected.pop(key, None)
            else:
                doc = {"id": key, "v": rng.randrange(10**6), "f": f, "pad": "x" * rng.randrange(50)}
                expected[key] = doc
            lines.append(doc)
            total += 1
        write_lines(tmp_path / f"data/{f}.jsonl", lines)
    return expected, total, bad


def test_sigkill_at_many_points_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, warehouse: Warehouse
) -> None:
    rng = random.Random(20260101)
    expected, total, bad = make_stream(tmp_path, rng)
    bindings = [
        {
            "source": "data/*.jsonl",
            "table": "orders",
            "key": ["/id"],
            "hard_delete": True,
            "rejects": "rejects/orders.jsonl",
        },
        {
            "source": "data/*.jsonl",
            "table": "events",
            "key": ["/id"],
            "delta_updates": True,
            "rejects": "rejects/events.jsonl",
        },
    ]
    loaded = write_config(
        tmp_path, bindings, warehouse=warehouse, transaction={"max_documents": 150}
    )
    argv = run_script(loaded.path, once=True)
    kills = 0
    for attempt in range(60):
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        # Kill after a random number of this run's commits plus a random few milliseconds:
        # between commits, while reading, while staging, or inside the destination's commit.
        target = rng.randrange(1, 6)
        seen = 0
        for line in proc.stderr:
            if "committed transaction" in line:
                seen += 1
                if seen == target:
                    time.sleep(rng.uniform(0, 0.03))
                    proc.send_signal(signal.SIGKILL)
                    break
        proc.wait()
        if proc.returncode == -signal.SIGKILL:
            kills += 1
            continue
        assert proc.returncode == 0, f"attempt {attempt} exited {proc.returncode}"
        break
    else:
        raise AssertionError("never finished")
    assert kills >= 5
    got = {k: json.loads(d) for k, d in warehouse.rows("SELECT id, flow_document FROM orders")}
    assert got == expected
    # Keys stay unique whatever the kills interrupted (DuckDB tables have no PRIMARY KEY).
    assert warehouse.rows("SELECT count(*) - count(DISTINCT id) FROM orders") == [(0,)]
    assert warehouse.rows("SELECT count(*) FROM events") == [(total,)]
    for name in ("orders", "events"):
        lines = (tmp_path / f"rejects/{name}.jsonl").read_text().splitlines()
        where = [(r["source"], r["line"]) for r in map(json.loads, lines)]
        assert len(where) == bad and len(set(where)) == bad
