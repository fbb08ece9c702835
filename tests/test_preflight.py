"""``check`` says what ``run`` will do: one validation, the same sentences in both (issue 9).

Before, ``check`` passed two bindings on one table, an empty config, an unwritable destination
or rejects folder — all refused by ``run`` — and failed a missing destination folder that
``run`` creates. A ``rejects:`` file under an unwritable path was a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from afterload.cli import app
from afterload.config import load_config
from afterload.errors import AfterloadError, ConfigError
from afterload.ndjson.rejects import RejectsFile
from afterload.pipeline import materialize
from tests.materialize_support import Warehouse, write_config

runner = CliRunner()


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "1.jsonl").write_text('{"id": 1}\n{"id": \n{"id": 2}\n')
    (tmp_path / "blocker").write_text("a regular file: nothing can be created under it\n")
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def _check(path: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["check", str(path)])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def _run_refuses(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        materialize(load_config(path), once=True)
    return info.value.problems


def _same_in_both(path: Path) -> str:
    """Run refuses with one line; check fails and prints that very line."""
    code, output = _check(path)
    (line,) = _run_refuses(path)
    assert code != 0, output
    assert line in output.replace("\n", ""), (line, output)
    return line


BINDING = """\
  - source: data/*.jsonl
    table: {table}
    key: [/id]
"""
HEAD = "name: s\ndestination: {duckdb: {path: w.duckdb}}\nbindings:\n"


def test_two_bindings_on_one_table(tmp_path: Path) -> None:
    text = HEAD + BINDING.format(table="t") + BINDING.format(table="T")
    line = _same_in_both(_write(tmp_path, text))
    assert line.startswith(f"{tmp_path / 'c.yaml'}:8: bindings[1].table: 'T'")
    assert "bindings[0]" in line


def test_two_bindings_on_standard_input(tmp_path: Path) -> None:
    text = HEAD + BINDING.format(table="a") + BINDING.format(table="b")
    text = text.replace("data/*.jsonl", "'-'")
    line = _same_in_both(_write(tmp_path, text))
    assert "bindings[1].source" in line and "standard input" in line


def test_two_bindings_on_one_rejects_file(tmp_path: Path) -> None:
    """Each binding cut the shared file back to its own committed size at every start."""
    shared = "    rejects: rej.jsonl\n"
    text = HEAD + BINDING.format(table="a") + shared + BINDING.format(table="b") + shared
    line = _same_in_both(_write(tmp_path, text))
    assert "bindings[1].rejects: rej.jsonl: bindings[0] writes its rejects there" in line


@pytest.mark.parametrize(
    ("then", "said"),
    [("    key: [/v]\n", "now says key ['/v']"), ("    delta_updates: true\n", "now says delta")],
)
def test_a_table_keeps_the_key_it_was_loaded_with(tmp_path: Path, then: str, said: str) -> None:
    """Before, DuckDB merged by the new key without a word (rows sharing a /v were lost), and
    a delta binding appended duplicates to a keyed table."""
    path = _write(tmp_path, HEAD + BINDING.format(table="t"))
    (tmp_path / "data" / "1.jsonl").write_text('{"id": 1, "v": 1}\n{"id": 2, "v": 1}\n')
    materialize(load_config(path), once=True)
    path.write_text(HEAD + BINDING.format(table="t").replace("    key: [/id]\n", then))
    line = _same_in_both(path)
    assert "bindings[0].key: table 't' was loaded with key ['/id']" in line and said in line


def test_empty_config(tmp_path: Path) -> None:
    line = _same_in_both(_write(tmp_path, "{}\n"))
    assert line.endswith("bindings: the config has no bindings, so run has nothing to do")


def test_trigger_only_config_says_run_would_refuse(tmp_path: Path) -> None:
    text = (
        "dbt_job_trigger: {access_url: 'http://127.0.0.1:9', account_id: 1, job_id: 1,"
        " api_key: k}\n"
    )
    path = _write(tmp_path, text)
    (line,) = _run_refuses(path)
    assert "no bindings" in line
    result = runner.invoke(app, ["check", str(path)])
    assert "no bindings" in result.output and "`afterload trigger`" in result.output


def test_unwritable_destination_folder(tmp_path: Path) -> None:
    text = (HEAD + BINDING.format(table="t")).replace("w.duckdb", "blocker/w.duckdb")
    line = _same_in_both(_write(tmp_path, text))
    assert line.startswith(f"{tmp_path / 'c.yaml'}:2: destination.duckdb.path:")
    assert "blocker" in line and "not a folder" in line


def test_missing_destination_folder_passes_and_is_created(tmp_path: Path) -> None:
    text = (HEAD + BINDING.format(table="t")).replace("w.duckdb", "new/sub/w.duckdb")
    text += "    rejects: rejects/t.jsonl\n"
    path = _write(tmp_path, text)
    code, output = _check(path)
    assert code == 0, output
    assert "will be created" in output and "new/sub" in output
    report = materialize(load_config(path), once=True)
    assert report.documents == 2 and report.rejected == 1
    assert (tmp_path / "new" / "sub" / "w.duckdb").exists()


def test_rejects_in_an_unwritable_folder(tmp_path: Path) -> None:
    text = HEAD + BINDING.format(table="t") + "    rejects: blocker/rejects.jsonl\n"
    path = _write(tmp_path, text)
    line = _same_in_both(path)
    assert line.startswith(f"{path}:7: bindings[0].rejects: ")
    assert "blocker/rejects.jsonl" in line
    # In a real process: one line on stderr, no traceback, nothing committed.
    proc = subprocess.run(
        [sys.executable, "-m", "afterload", "run", str(path), "--once"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "blocker/rejects.jsonl" in proc.stderr
    assert not (tmp_path / "w.duckdb").exists()


def test_rejects_file_that_cannot_be_written_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("x")
    rejects = RejectsFile(tmp_path / "blocker" / "r.jsonl", "blocker/r.jsonl")
    assert rejects.size() == 0
    with pytest.raises(AfterloadError) as info:
        rejects.append([json.dumps({"line": 1}).encode()])
    message = str(info.value)
    assert "\n" not in message and message.startswith("blocker/r.jsonl: cannot write")


def test_missing_schema_file(tmp_path: Path) -> None:
    text = HEAD + BINDING.format(table="t") + "    schema: nope.json\n"
    line = _same_in_both(_write(tmp_path, text))
    assert "bindings[0].schema:" in line and "nope.json" in line


def test_cleared_trigger_is_said_by_check(tmp_path: Path) -> None:
    text = HEAD + BINDING.format(table="t")
    text += "dbt_job_trigger: {access_url: '', account_id: '', job_id: '', api_key: ''}\n"
    code, output = _check(_write(tmp_path, text))
    assert code == 0, output
    assert "dbt_job_trigger is cleared" in output


@pytest.mark.skipif(
    not Path("/proc/self/mountinfo").exists(), reason="a Linux /proc file system is needed"
)
@pytest.mark.parametrize("rejects", ["/proc/rej.jsonl", "/proc/new/rej.jsonl"])
def test_rejects_on_a_kernel_file_system(tmp_path: Path, rejects: str) -> None:
    """Root may write /proc by its mode bits, so check passed what run could not create."""
    path = _write(tmp_path, HEAD + BINDING.format(table="t") + f"    rejects: {rejects}\n")
    line = _same_in_both(path)
    assert line.startswith(f"{path}:7: bindings[0].rejects: {rejects}: the rejects file")
    assert "proc file system" in line


@pytest.mark.parametrize(
    "table", ["_afterload_checkpoints", "_AFTERLOAD_RUNS", "t__afterload_rebuild"]
)
def test_a_table_afterload_keeps_for_itself(tmp_path: Path, table: str) -> None:
    """Before, check passed a binding into the checkpoints table, which run then broke on."""
    line = _same_in_both(_write(tmp_path, HEAD + BINDING.format(table=table)))
    assert line.startswith(f"{tmp_path / 'c.yaml'}:5: bindings[0].table: {table!r} is a name")
    assert not (tmp_path / "w.duckdb").exists()


def test_every_internal_table_is_reserved() -> None:
    from afterload.destinations.base import internal_table
    from afterload.destinations.ledger import RUNS
    from afterload.destinations.sql import CHECKPOINTS

    assert internal_table(CHECKPOINTS) and internal_table(RUNS)
    assert not internal_table("afterload_orders")


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"], indirect=True)
def test_two_materializations_in_one_table(tmp_path: Path, warehouse: Warehouse) -> None:
    """Before, a second materialization (delta) appended to the first one's keyed table, and
    the first one's next merge deleted the second one's committed rows, both checkpoints
    still counting them. ``TABLE`` in another case is the same table in DuckDB."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "1.jsonl").write_text('{"id": 1, "v": "a"}\n')
    first = write_config(
        tmp_path, [{"source": "data/*.jsonl", "table": "t", "key": ["/id"]}], warehouse=warehouse
    )
    materialize(load_config(first.path), once=True)
    second = tmp_path / "b"
    second.mkdir()
    (second / "data").mkdir()
    (second / "data" / "1.jsonl").write_text('{"id": 1, "v": "b"}\n')
    block = dict(warehouse.block)
    if "duckdb" in block:
        block = {"duckdb": {"path": str(tmp_path / "warehouse.duckdb")}}
    table = "T" if warehouse.kind == "duckdb" else "t"
    text = yaml.safe_dump(
        {
            "name": "other",
            "destination": block,
            "bindings": [{"source": "data/*.jsonl", "table": table, "delta_updates": True}],
        }
    )
    (second / "c.yaml").write_text(text)
    line = _same_in_both(second / "c.yaml")
    assert f"table {table!r} is loaded by materialization 'shop' with key ['/id']" in line
    assert "this binding says delta updates" in line, line
    assert warehouse.rows("select id, v from t") == [(1, "a")]
    # Merging by the same key (a load split in parts) may share the table.
    (second / "data" / "1.jsonl").write_text('{"id": 2, "v": "b"}\n')
    shared = text.replace("delta_updates: true", "key:\n    - /id")
    (second / "c.yaml").write_text(shared.replace("table: T", "table: t"))
    assert _check(second / "c.yaml")[0] == 0
    materialize(load_config(second / "c.yaml"), once=True)
    assert warehouse.rows("select id, v from t order by id") == [(1, "a"), (2, "b")]


PG_HEAD = (
    "name: s\ndestination: {postgres: {dsn: 'postgresql://postgres@127.0.0.1:5432/test', "
    "schema: %s}}\nbindings:\n"
)


def test_postgres_keeps_every_document(tmp_path: Path) -> None:
    """Before, check passed ``store_document: false`` on PostgreSQL and run refused it."""
    path = _write(
        tmp_path,
        PG_HEAD % "afterload_never_made"
        + BINDING.format(table="t")
        + "    store_document: false\n",
    )
    line = _same_in_both(path)
    assert "bindings[0].store_document: store_document: false is not supported" in line


@pytest.mark.parametrize("schema", ["pg_catalog", "PG_toast", "information_schema"])
def test_postgres_system_schemas(tmp_path: Path, schema: str) -> None:
    """Before, check said the server was reachable and run failed at its first statement."""
    path = _write(tmp_path, PG_HEAD % schema + BINDING.format(table="t"))
    code, output = _check(path)
    assert code != 0 and "one of PostgreSQL's system schemas" in output, output
    with pytest.raises(AfterloadError, match="system schemas"):
        load_config(path)
