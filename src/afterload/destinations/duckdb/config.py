"""The ``destination.duckdb`` block."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from afterload.fields import MEMORY_PATTERN, Strict

SYSTEM_NAMES = ("information_schema", "pg_catalog", "system", "temp")
"""DuckDB's own schemas and catalogs: a schema of that name cannot be created, or is ambiguous."""


class DuckDBConfig(Strict):
    """An embedded DuckDB database file."""

    path: str = Field(
        default="afterload.duckdb",
        description="The DuckDB database file, relative to the config file.",
    )
    schema_: str = Field(default="main", alias="schema", description="The schema of the tables.")
    memory_limit: str | None = Field(
        default=None,
        pattern=MEMORY_PATTERN,
        description="DuckDB's memory limit, e.g. 1GB; DuckDB's default is 80% of the RAM.",
    )

    @field_validator("schema_")
    def _not_a_system_name(cls, schema: str, info: ValidationInfo) -> str:
        """A system schema (or a catalog's name: DuckDB's own, or the database's, its file
        name up to the first dot) fails in run at the first statement."""
        database = Path(str(info.data.get("path", ""))).name.split(".", 1)[0]
        if database.lower() in ("main", "system", "temp"):
            database += "_db"  # as DuckDB names such a file's catalog
        lowered = schema.lower()
        if lowered in SYSTEM_NAMES:
            raise ValueError(
                f"{schema!r} is one of DuckDB's system schemas or catalogs "
                f"({', '.join(SYSTEM_NAMES)}), where no table can be created; use another "
                "schema, such as main"
            )
        if database and lowered == database.lower():
            raise ValueError(
                f"{schema!r} is the database's own name (the DuckDB file's name up to its "
                "first dot), which DuckDB cannot tell from a schema; use another schema, such "
                "as main"
            )
        return schema
