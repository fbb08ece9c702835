"""Helpers for the materialization tests: configs on disk, runs, and reading tables back."""

from __future__ import annotations

import json
import os
import secrets
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import yaml

from afterload.config import LoadedConfig, load_config

ROOT = Path(__file__).resolve().parent.parent


def write_config(
    tmp_path: Path,
    bindings: list[dict[str, Any]],
    *,
    warehouse: Warehouse | None = None,
    **extra: Any,
) -> LoadedConfig:
    config: dict[str, Any] = {
        "name": "shop",
        "destination": warehouse.block if warehouse else {"duckdb": {"path": "warehouse.duckdb"}},
        "bindings": bindings,
    }
    config.update(extra)
    path = tmp_path / "afterload.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_config(path)


def write_lines(path: Path, docs: list[Any], *, append: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a" if append else "w") as f:
        for doc in docs:
            f.write((doc if isinstance(doc, str) else json.dumps(doc)) + "\n")


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


POSTGRES_DSN = os.environ.get(
    "AFTERLOAD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


class Warehouse:
    """One destination under test, so the runtime's suite runs unchanged against each.

    ``rows`` answers SQL against the committed tables, with JSON values as text whatever the
    destination returns them as, so one assertion fits DuckDB and PostgreSQL alike.
    """

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.path = tmp_path / "warehouse.duckdb"
        self.schema = f"afterload_test_{secrets.token_hex(5)}"
        if kind == "duckdb":
            self.block: dict[str, Any] = {"duckdb": {"path": "warehouse.duckdb"}}
        else:
            self.block = {"postgres": {"dsn": POSTGRES_DSN, "schema": self.schema}}

    def __repr__(self) -> str:
        return self.kind

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.kind == "duckdb":
            return rows(self.path, sql)
        import psycopg

        with psycopg.connect(POSTGRES_DSN, autocommit=True) as con:
            con.execute(f'SET search_path TO "{self.schema}"')
            found = con.execute(sql).fetchall()
        return [tuple(_as_text(v) for v in row) for row in found]

    def exists(self) -> bool:
        """Whether anything was ever written (the database file, or the schema)."""
        if self.kind == "duckdb":
            return self.path.exists()
        import psycopg

        with psycopg.connect(POSTGRES_DSN, autocommit=True) as con:
            found = con.execute(
                "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", [self.schema]
            ).fetchall()
        return bool(found)

    def drop(self) -> None:
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(POSTGRES_DSN, autocommit=True) as con:
                con.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


def _as_text(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def run_script(config: Path, *, once: bool) -> list[str]:
    """argv for a child process that runs one materialization (no CLI needed)."""
    code = (
        "import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stderr);"
        "from afterload.config import load_config;"
        "from afterload.cli.run import run_materialization;"
        f"sys.exit(run_materialization(load_config({str(config)!r}), once={once!r}))"
    )
    return [sys.executable, "-c", code]
