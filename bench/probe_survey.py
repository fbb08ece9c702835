"""Where the survey's SQL time goes, and what the alternatives in DuckDB's own SQL cost.

    PYTHONPATH=src .venv/bin/python bench/probe_survey.py [--lines 200000] [--repeat 5]

A probe, not a benchmark of `make bench`: one transaction of orders lines, in-process, one
in-memory DuckDB, each query's wall and CPU time (process CPU: DuckDB's threads included),
medians of interleaved repeats. Every query materializes what it computes (a ``count(*)``
over a projection DuckDB can skip would measure nothing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_duckdb import DATA, standard_inputs  # noqa: E402

from afterload.core.survey import DATE_TIME_PATTERN  # noqa: E402
from afterload.destinations.duckdb.connect import literal  # noqa: E402
from afterload.destinations.duckdb.survey import DEEP, SUSPECT  # noqa: E402

COLUMNS = ["id", "customer", "amount", "created_at", "shipping", "tags", "status"]
TYPES = {
    "id": "BIGINT",
    "customer": "VARCHAR",
    "amount": "DOUBLE",
    "created_at": "TIMESTAMPTZ",
    "shipping": "JSON",
    "tags": "JSON",
    "status": "VARCHAR",
}


def queries(path: Path) -> dict[str, str]:
    src = f"read_json_objects({literal(str(path))}, format='newline_delimited')"
    pointers = ", ".join(literal("/" + c) for c in COLUMNS)
    x = "CAST(json_extract(json, '/created_at') AS VARCHAR)"
    iso = (
        f"coalesce(regexp_full_match({x}, {literal(DATE_TIME_PATTERN)}) AND "
        f"TRY_CAST({x}[2:-2] AS TIMESTAMPTZ) IS NOT NULL, false)"
    )
    suspect = (
        f"CASE WHEN regexp_matches(json, {literal(SUSPECT)}) THEN true "
        f"WHEN length(json) < {DEEP} THEN false "
        f"ELSE length(json) - length(translate(json, '[{{', '')) >= {DEEP} END"
    )
    typed = "{" + ", ".join(f"{c}: '{t}'" for c, t in TYPES.items()) + "}"
    struct = "{" + ", ".join(f'"{c}": "{t}"' for c, t in TYPES.items()) + "}"
    used = ", ".join(f"max({c})" for c in COLUMNS)
    return {
        "the survey as it runs": (
            f"SELECT json_keys(json), json_type(json, [{pointers}]), [{iso}]::BOOLEAN[], "
            f"{suspect}, count(*), 0, any_value(json)::VARCHAR FROM {src} GROUP BY ALL"
        ),
        "read the lines only": f"SELECT max(length(json)) FROM {src}",
        "names: json_keys": f"SELECT json_keys(json), count(*) FROM {src} GROUP BY ALL",
        "classes: json_type of 7": (
            f"SELECT json_type(json, [{pointers}]), count(*) FROM {src} GROUP BY ALL"
        ),
        "date-time check": f"SELECT {iso}, count(*) FROM {src} GROUP BY ALL",
        "lexical check": f"SELECT {suspect}, count(*) FROM {src} GROUP BY ALL",
        "alt: json_structure": f"SELECT json_structure(json), count(*) FROM {src} GROUP BY ALL",
        "alt: json_extract of 7, then json_type": (
            "SELECT json_keys(json), ["
            + ", ".join(f"json_type(e[{i + 1}])" for i in range(len(COLUMNS)))
            + f"], count(*) FROM (SELECT json, json_extract(json, [{pointers}]) e FROM {src}) "
            "GROUP BY ALL"
        ),
        "floor: read_json typed, every column used": (
            f"SELECT {used} FROM read_json({literal(str(path))}, columns={typed})"
        ),
        "floor: json_transform, every column used": (
            f"SELECT {', '.join(f'max(s.{c})' for c in COLUMNS)} FROM (SELECT json_transform("
            f"json, {literal(struct)}) s FROM {src})"
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    orders, _ = standard_inputs(1_000_000, 200_000)
    block = DATA / f"probe-survey-{args.lines}.jsonl"
    if not block.exists():
        with open(orders, "rb") as src, open(block, "wb") as out:
            for _, line in zip(range(args.lines), src, strict=False):
                out.write(line)
    con = duckdb.connect()
    qs = queries(block)
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in qs}
    load0 = os.getloadavg()
    for _ in range(args.repeat):
        for name, sql in qs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            con.execute(sql).fetchall()
            runs[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    load1 = os.getloadavg()
    print(
        f"{args.lines} lines, DuckDB {duckdb.__version__}, {os.cpu_count()} CPUs, medians of "
        f"{args.repeat}; load average {load0[0]:.2f} -> {load1[0]:.2f}\n"
    )
    print("| query | wall s | CPU s |\n| --- | --- | --- |")
    for name, r in runs.items():
        wall = statistics.median(w for w, _ in r)
        cpu = statistics.median(c for _, c in r)
        print(f"| {name} | {wall:.3f} | {cpu:.3f} |")


if __name__ == "__main__":
    main()
