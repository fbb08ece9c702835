"""Paths, pinned versions and the names of destinations, cases and tools the bench shares."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

DLT_VERSION = "1.31.0"
DLT_REQUIREMENTS = [f"dlt[duckdb,postgres,parquet]=={DLT_VERSION}"]
TOOLS_REQUIREMENTS = ["matplotlib==3.11.2", "py-spy==0.4.3"]
DLT_VENV = HERE / ".venv-dlt"
TOOLS_VENV = HERE / ".venv-tools"
RESULTS_MD = HERE / "RESULTS.md"
RESULTS_PNG = HERE / "results.png"
SECTION = "## Side by side (make bench)"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"

DESTINATIONS = ("duckdb", "postgres")
CASES = ("append", "merge", "upsert")
TOOLS = ("afterload", "native", "dlt-dicts", "dlt-arrow")
DESTINATION_TITLE = {"duckdb": "DuckDB", "postgres": "PostgreSQL"}
CASE_TITLE = {
    "append": "append / delta, empty table",
    "merge": "merge into empty table",
    "upsert": "upsert into the merged table",
}
TOOL_TITLE = {
    "afterload": "afterload `run --once`",
    "native": "native bulk path (ceiling)",
    "dlt-dicts": "dlt, parsed dicts",
    "dlt-arrow": "dlt, Arrow tables",
}
NATIVE_HOW = {
    "duckdb": {
        "append": "`CREATE TABLE AS SELECT * FROM read_json`",
        "merge": "`read_json` into a table with its primary key",
        "upsert": "`INSERT OR REPLACE … read_json`",
    },
    "postgres": {
        "append": "`COPY` into a typed table",
        "merge": "`COPY` into a typed table with its primary key",
        "upsert": "`COPY` to staging + `INSERT … ON CONFLICT`",
    },
}
