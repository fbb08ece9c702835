"""The ``destination.duckdb`` block."""

from __future__ import annotations

from pydantic import Field

from afterload.fields import Strict


class DuckDBConfig(Strict):
    """An embedded DuckDB database file."""

    path: str = Field(
        default="afterload.duckdb",
        description="The DuckDB database file, relative to the config file.",
    )
    schema_: str = Field(default="main", alias="schema", description="The schema of the tables.")
    memory_limit: str | None = Field(
        default=None,
        pattern=r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="DuckDB's memory limit, e.g. 1GB; DuckDB's default is 80% of the RAM.",
    )
