"""Helpers for the materialization tests: configs on disk, runs, and reading tables back."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import duckdb
import yaml

from afterload.config import LoadedConfig, load_config

ROOT = Path(__file__).resolve().parent.parent


def write_config(tmp_path: Path, bindings: list[dict[str, Any]], **extra: Any) -> LoadedConfig:
    config: dict[str, Any] = {
        "name": "shop",
        "destination": {"duckdb": {"path": "warehouse.duckdb"}},
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


def run_script(config: Path, *, once: bool) -> list[str]:
    """argv for a child process that runs one materialization (no CLI needed)."""
    code = (
        "import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stderr);"
        "from afterload.config import load_config;"
        "from afterload.runtime import run_materialization;"
        f"sys.exit(run_materialization(load_config({str(config)!r}), once={once!r}))"
    )
    return [sys.executable, "-c", code]
