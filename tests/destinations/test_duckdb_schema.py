"""A DuckDB schema where no table can be made is one sentence in check and run (new-user test).

Before, ``schema: information_schema`` passed ``check`` and ``run`` died in a traceback
("Binder Error: Cannot create schema in system catalog"); ``system``, ``temp`` and the
database's own name were "ambiguous reference" tracebacks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from afterload.destinations.base import DestinationError
from afterload.destinations.duckdb.destination import DuckDBDestination
from tests.test_preflight import _same_in_both, _write

CONFIG = """\
name: s
destination: {{duckdb: {{path: {path}, schema: {schema}}}}}
bindings:
  - source: data/*.jsonl
    table: t
    key: [/id]
"""


@pytest.mark.parametrize(
    ("schema", "path", "said"),
    [
        ("information_schema", "w.duckdb", "one of DuckDB's system schemas"),
        ("PG_CATALOG", "w.duckdb", "one of DuckDB's system schemas"),
        ("system", "w.duckdb", "one of DuckDB's system schemas"),
        ("temp", "w.duckdb", "one of DuckDB's system schemas"),
        ("w", "w.duckdb", "the database's own name"),
    ],
)
def test_a_schema_duckdb_keeps_is_refused_by_check_and_run(
    tmp_path: Path, schema: str, path: str, said: str
) -> None:
    config = _write(tmp_path, CONFIG.format(path=path, schema=schema))
    line = _same_in_both(config)
    assert line.startswith(f"{config}:2: destination.duckdb.schema: {schema!r} is {said}")
    proc = subprocess.run(
        [sys.executable, "-m", "afterload", "run", str(config), "--once"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert not (tmp_path / "w.duckdb").exists()


@pytest.mark.parametrize(("schema", "path"), [("main", "main.duckdb"), ("sales", "w.duckdb")])
def test_usual_schemas_still_run(tmp_path: Path, schema: str, path: str) -> None:
    from afterload.config import load_config
    from afterload.pipeline import materialize

    config = _write(tmp_path, CONFIG.format(path=path, schema=schema))
    (tmp_path / "data" / "1.jsonl").write_text('{"id": 1}\n')
    assert materialize(load_config(config), once=True).documents == 1


def test_the_destination_says_a_refused_schema_in_one_sentence(tmp_path: Path) -> None:
    """Whatever lets such a schema through (the Python API, a DuckDB with other names), the
    DuckDB error never surfaces as a traceback."""
    dest = DuckDBDestination(tmp_path / "w.duckdb", "information_schema")
    with pytest.raises(DestinationError) as info:
        dest.open("m")
    dest.close()
    message = str(info.value)
    assert "\n" not in message and "cannot use schema 'information_schema'" in message
