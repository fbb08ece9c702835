"""A rejects file may not go where afterload reads (new-user test, defect 1).

Before, ``rejects: data/rejects.jsonl`` beside ``source: data/*.jsonl`` passed ``check`` and
``run``: the rejects were read back as input (following, the file grew without end; with
delta updates its entries became rows). A rejects file over the DuckDB file or the config
file passed too.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from afterload.config import load_config
from afterload.pipeline import materialize
from tests.test_preflight import _check, _same_in_both, _write

HEAD = "name: loopd\ndestination: {duckdb: {path: w.duckdb}}\nbindings:\n"
DELTA = "  - source: {source}\n    table: {table}\n    delta_updates: true\n"


def _config(tmp_path: Path, rejects: str, source: str = "data/*.jsonl") -> Path:
    text = HEAD + DELTA.format(source=source, table="t") + f"    rejects: {rejects}\n"
    return _write(tmp_path, text)


@pytest.mark.parametrize(
    "rejects", ["data/rejects.jsonl", "./data/sub/../r.jsonl", "{tmp}/data/abs.jsonl"]
)
def test_rejects_under_its_own_source_glob_is_refused(tmp_path: Path, rejects: str) -> None:
    path = _config(tmp_path, rejects.format(tmp=tmp_path))
    line = _same_in_both(path)
    assert line.startswith(f"{path}:7: bindings[0].rejects: ")
    assert "this binding's source 'data/*.jsonl' matches it" in line
    assert not (tmp_path / "w.duckdb").exists()


def test_rejects_under_another_bindings_recursive_glob_is_refused(tmp_path: Path) -> None:
    text = (
        HEAD
        + DELTA.format(source="'data/**/*.jsonl'", table="a")
        + DELTA.format(source="data/1.jsonl", table="b")
        + "    rejects: data/deep/er/b.jsonl\n"
    )
    line = _same_in_both(_write(tmp_path, text))
    assert "bindings[1].rejects" in line and "bindings[0]'s source 'data/**/*.jsonl'" in line


@pytest.mark.parametrize(
    ("rejects", "said"),
    [
        ("c.yaml", "the config file itself"),
        ("w.duckdb", "the destination's DuckDB file"),
        ("w.duckdb.wal", "the destination's DuckDB file"),
    ],
)
def test_rejects_over_the_config_or_database_is_refused(
    tmp_path: Path, rejects: str, said: str
) -> None:
    path = _config(tmp_path, rejects, source="data/1.jsonl")
    line = _same_in_both(path)
    assert f"bindings[0].rejects: {rejects}: it is {said}" in line


def test_rejects_outside_every_glob_runs_twice_without_feeding_itself(tmp_path: Path) -> None:
    """The tester's two runs, with the rejects file moved out of the glob: one row, one
    reject, and the second run reads nothing new."""
    path = _config(tmp_path, "rejects/t.jsonl")
    (tmp_path / "data" / "1.jsonl").write_text('{"id":1}\nbad\n')
    assert _check(path)[0] == 0
    for _ in range(2):
        materialize(load_config(path), once=True)
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM t").fetchone() == (1,)
    assert len((tmp_path / "rejects" / "t.jsonl").read_text().splitlines()) == 1
