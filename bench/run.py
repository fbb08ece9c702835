"""`make bench`: afterload, the native bulk path and dlt, side by side, one run, same data.

    .venv/bin/python bench/run.py [--runs 3] [--dlt-dict-runs 1] [--quick]
        [--only duckdb,postgres,trigger,dlt] [--dsn URI] [--write | --no-write]
    .venv/bin/python bench/run.py --render bench/data/results-full.json   # tables and chart again

Every load runs in its own process, timed from start to exit, its peak RSS taken from
``os.wait4``: afterload as ``afterload run CONFIG --once``; the native path as
bench/native_load.py in this venv; dlt as bench/dlt_load.py in bench/.venv-dlt, a virtual
environment this script creates with a pinned dlt (afterload's venv never gets dlt). The chart is
drawn by bench/chart.py in bench/.venv-tools (matplotlib, py-spy), created the same way.

Cases, per destination: ``append`` (delta updates into an empty table), ``merge`` (standard
updates, keyed, into an empty table) and ``upsert`` (the update file merged into the result of
``merge``; only that second load is timed). A full run (no --quick, no --only) writes its
section of bench/RESULTS.md and bench/results.png; other runs write under bench/data/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the sibling modules, when imported from elsewhere

from bench_duckdb import DATA  # noqa: E402
from data import prepare_data  # noqa: E402
from profiling import profile_afterload  # noqa: E402
from report import emit, machine  # noqa: E402
from runner import Bench, Postgres  # noqa: E402
from settings import (  # noqa: E402
    DEFAULT_DSN,
    DESTINATION_TITLE,
    DESTINATIONS,
    RESULTS_MD,
    RESULTS_PNG,
    TOOLS,
)
from summary import bars, summarize  # noqa: E402
from trigger import run_trigger  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    parser.add_argument(
        "--dlt-dict-runs", type=int, default=1, help="runs of dlt's slow dict path (default 1)"
    )
    parser.add_argument("--quick", action="store_true", help="100k docs and 20k updates")
    parser.add_argument("--docs", type=int, help="documents (default 1M, 100k with --quick)")
    parser.add_argument("--updates", type=int, help="updates (default 200k, 20k with --quick)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="duckdb, postgres (that destination's cases), dlt (dlt and the native path "
        "only), trigger; comma-separated or repeated",
    )
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--rss-cap-gb", type=float, default=16.0, help="kill a child above this")
    parser.add_argument("--dlt-timeout", type=float, default=900.0, help="seconds per dlt load")
    parser.add_argument("--no-profile", action="store_true", help="no py-spy on missed bars")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--render", type=Path, help="re-render a results JSON and exit")
    args = parser.parse_args(argv)
    only = {x.strip() for item in args.only for x in item.split(",") if x.strip()}
    unknown = only - {"duckdb", "postgres", "trigger", "dlt"}
    if unknown:
        parser.error(f"--only: unknown {', '.join(sorted(unknown))}")
    args.only_set = only
    args.destinations = [d for d in DESTINATIONS if d in only] or (
        list(DESTINATIONS) if not only or "dlt" in only else []
    )
    # dlt alone still gets the native path: the ceiling its figures are read against
    args.tools = ["native", "dlt-dicts", "dlt-arrow"] if "dlt" in only else list(TOOLS)
    args.trigger = not only or "trigger" in only
    args.docs = args.docs or (100_000 if args.quick else 1_000_000)
    args.updates = args.updates or (20_000 if args.quick else 200_000)
    full = not args.quick and not only and args.docs == 1_000_000
    args.write = full if args.write is None else args.write
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        result = json.loads(args.render.read_text())
        emit(
            result,
            args.render,
            RESULTS_MD if args.write else args.render.with_suffix(".md"),
            RESULTS_PNG if args.write else args.render.with_suffix(".png"),
        )
        return 0
    command = "make bench" if not sys.argv[1:] else "bench/run.py " + " ".join(sys.argv[1:])
    started = time.perf_counter()
    print(f"data: {args.docs:,} documents, {args.updates:,} updates (cached in bench/data/)")
    data = prepare_data(args.docs, args.updates)
    pg = Postgres(args.dsn) if "postgres" in args.destinations else None
    bench = Bench(args, data, pg)
    result: dict[str, Any] = {}
    try:
        info = machine(pg)
        if args.destinations:
            bench.run()
        rows = summarize(bench.figures)
        found = bars(rows)
        profiles: dict[str, list[str]] = {}
        if not args.no_profile:
            for b in found:
                key = f"{DESTINATION_TITLE[b.destination]} {b.case}"
                if b.met is False and key not in profiles:
                    print(f"profiling afterload on {key} (missed: {b.name})", flush=True)
                    profiles[key] = profile_afterload(bench, b.destination, b.case)
        trigger = run_trigger() if args.trigger else None
        with contextlib.suppress(psycopg.Error):  # the server went away: keep the first
            info = machine(pg) | {"load_before": info["load_before"]}
        info["load_after"] = os.getloadavg()
    finally:
        if pg is not None:
            pg.close()
        shutil.rmtree(bench.work, ignore_errors=True)
    result = {
        "command": command,
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "total_seconds": time.perf_counter() - started,
        "runs": args.runs,
        "dlt_dict_runs": min(args.dlt_dict_runs, args.runs),
        "data": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(data).items()},
        "data_mib": data.mib,
        "machine": info,
        "figures": [asdict(f) for f in bench.figures],
        "notes": bench.notes,
        "profiles": profiles,
        "trigger": trigger,
    }
    tag = "full" if args.write else ("quick" if args.quick else "partial")
    json_path = DATA / f"results-{tag}.json"
    json_path.write_text(json.dumps(result, indent=1))
    md_path = RESULTS_MD if args.write else DATA / f"results-{tag}.md"
    png_path = RESULTS_PNG if args.write else DATA / f"results-{tag}.png"
    emit(result, json_path, md_path, png_path)
    print("\nbars:")
    for b in found:
        verdict = "n/a" if b.met is None else ("met" if b.met else f"MISSED, {b.margin}")
        print(f"  {b.name:<22} {b.destination:<8} {b.case:<6} {b.figure:>14}  {verdict}")
    if trigger:
        print(f"  trigger: {trigger['verdict'] or 'no verdict (bench_trigger.py failed)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
