"""One dlt load of an NDJSON file, for bench/run.py. Runs in bench/.venv-dlt, never in .venv.

    bench/.venv-dlt/bin/python bench/dlt_load.py --destination duckdb --target db.duckdb \
        --dataset bench --disposition append|merge --feed dicts|arrow FILE

``dicts`` is the way dlt's docs show JSON records: a resource yielding the parsed documents,
which dlt normalizes (nested objects flattened, lists into child tables) and loads with the
destination's default file format. ``arrow`` is dlt's faster path: the resource yields Arrow
tables (pyarrow's own NDJSON reader), which skip normalization and load as parquet (DuckDB) or
csv (PostgreSQL; nested columns flattened or JSON-encoded first, as dlt's csv writer asks).
Repeated runs with the same --pipelines-dir and --dataset continue the same pipeline, which is
how the upsert case merges updates into an earlier load.

Prints one JSON line: seconds inside ``pipeline.run`` and the rows dlt reports.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt


def parsed_dicts(path: str) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as f:
        for line in f:
            yield json.loads(line)


def arrow_tables(path: str, *, for_csv: bool) -> Iterator[Any]:
    """Tables from pyarrow's NDJSON reader, about 16 MiB of input each.

    dlt's csv writer takes no nested columns, so ``for_csv`` flattens the struct into
    ``shipping__city``-style columns (dlt's own naming) and turns lists into JSON text.
    """
    import pyarrow as pa
    import pyarrow.json as pj

    reader = pj.open_json(path, read_options=pj.ReadOptions(block_size=16 << 20))
    for batch in reader:
        table = pa.Table.from_batches([batch])
        if for_csv:
            table = table.flatten()
            table = table.rename_columns([n.replace(".", "__") for n in table.column_names])
            for i, column in enumerate(table.columns):
                if pa.types.is_list(column.type):
                    text = pa.array([json.dumps(v) for v in column.to_pylist()], pa.string())
                    table = table.set_column(i, table.field(i).name, text)
        yield table


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--destination", choices=["duckdb", "postgres"], required=True)
    parser.add_argument("--target", required=True, help="a DuckDB file or a PostgreSQL URI")
    parser.add_argument("--dataset", required=True, help="dlt's dataset: the schema")
    parser.add_argument("--pipelines-dir", required=True)
    parser.add_argument("--disposition", choices=["append", "merge"], required=True)
    parser.add_argument("--feed", choices=["dicts", "arrow"], required=True)
    args = parser.parse_args()

    if args.destination == "duckdb":
        destination = dlt.destinations.duckdb(args.target)
    else:
        destination = dlt.destinations.postgres(args.target)
    hints: dict[str, Any] = {"name": "orders", "write_disposition": args.disposition}
    if args.disposition == "merge":
        hints["primary_key"] = "id"
    fmt = None
    if args.feed == "dicts":
        resource = dlt.resource(parsed_dicts(args.file), **hints)
    else:
        for_csv = args.destination == "postgres"
        resource = dlt.resource(arrow_tables(args.file, for_csv=for_csv), **hints)
        fmt = "csv" if for_csv else "parquet"
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{args.dataset}",
        pipelines_dir=args.pipelines_dir,
        destination=destination,
        dataset_name=args.dataset,
    )
    start = time.perf_counter()
    info = pipeline.run(resource, loader_file_format=fmt)
    seconds = time.perf_counter() - start
    info.raise_on_failed_jobs()
    rows = pipeline.last_trace.last_normalize_info.row_counts
    print(json.dumps({"seconds": seconds, "rows": rows, "dlt": dlt.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
