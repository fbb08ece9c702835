"""Issue 9, "logs and machine-readable output": real child processes whose stderr is a pipe,
as under systemd, cron, a container or a log shipper."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from afterload.cli import app
from afterload.cli.logs import hoist_global_options
from afterload.cli.status import materialization_status
from afterload.config.load import load_config
from afterload.triggers.dbt_cloud.emulator import EmulatorServer
from tests.conftest import ACCOUNT, API_KEY, JOB
from tests.materialize_support import write_config, write_lines

runner = CliRunner()
AFTERLOAD = [sys.executable, "-m", "afterload"]
LONG = "orders_placed_through_the_partner_storefront_eu"


def _afterload(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AFTERLOAD, *args], capture_output=True, text=True, timeout=90, cwd=cwd)


def _with_rejects(tmp_path: Path) -> Path:
    binding = {
        "source": f"data/{LONG}/*.jsonl",
        "table": LONG,
        "key": ["/id"],
        "rejects": "rejects/orders.jsonl",
    }
    loaded = write_config(tmp_path, [binding])
    write_lines(tmp_path / f"data/{LONG}/1.jsonl", [{"id": 1}, {"id": 2}, "not json", {"id": 3}])
    return loaded.path


def test_one_record_is_one_line_when_not_on_a_terminal(tmp_path: Path) -> None:
    proc = _afterload("run", str(_with_rejects(tmp_path)), "--once")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    reject = [line for line in lines if "not valid JSON" in line or "(sent to" in line]
    assert len(reject) == 1 and LONG in reject[0] and "rejects/orders.jsonl" in reject[0], lines
    assert len(reject[0]) > 80  # it would have been wrapped at 80 columns
    # Every line is a whole record: it starts with its time and level.
    assert all(line[:2].isdigit() and line[2] == ":" for line in lines), lines


def test_json_logs_one_object_per_line_with_fields(tmp_path: Path) -> None:
    # --log-format after the subcommand: accepted like before it.
    proc = _afterload("run", str(_with_rejects(tmp_path)), "--once", "--log-format", "json")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stderr.splitlines()]
    assert all({"time", "level", "event"} <= r.keys() for r in records)
    (rejected,) = [r for r in records if "reason" in r and r.get("binding") == LONG]
    assert rejected["level"] == "warning" and rejected["file"].endswith("1.jsonl:3")
    (committed,) = [r for r in records if "transaction" in r]
    # The materialization's count: commit 1 recorded the rejects file's size before any line.
    assert committed["transaction"] == 2
    assert committed["counts"]["documents"] == 3 and committed["counts"]["rows"] == 3
    (summary,) = [r for r in records if r["event"].startswith("loaded ")]
    counts = summary["counts"]
    assert counts["documents"] == 3 and counts["rejected"] == 1 and counts["bytes"] > 0


def test_log_options_after_the_subcommand(tmp_path: Path) -> None:
    config = str(_with_rejects(tmp_path))
    quiet = _afterload("run", config, "--once", "--log-level", "warning")
    assert quiet.returncode == 0, quiet.stderr
    assert "committed transaction" not in quiet.stderr and "(sent to" in quiet.stderr
    loud = _afterload("run", config, "--once", "-v")
    assert loud.returncode == 0, loud.stderr


def test_hoisting_keeps_everything_else_in_place() -> None:
    args = ["run", "x.yaml", "--once", "-v", "--log-level=debug", "--log-format", "json"]
    assert hoist_global_options(args) == [
        "-v",
        "--log-level=debug",
        "--log-format",
        "json",
        "run",
        "x.yaml",
        "--once",
    ]
    assert hoist_global_options(["run", "--", "-v"]) == ["run", "--", "-v"]


def test_http_internals_never_shown(tmp_path: Path, server: EmulatorServer) -> None:
    """httpx's records hold every URL (a webhook's path is its secret) and the server's
    reason phrase (which may echo a header): not even at debug."""
    trigger = {"access_url": server.url, "account_id": ACCOUNT, "job_id": JOB, "api_key": API_KEY}
    loaded = write_config(tmp_path, [], dbt_job_trigger=trigger)
    info = _afterload("check", str(loaded.path))
    assert info.returncode == 0, info.stdout + info.stderr
    assert "HTTP Request" not in info.stderr and "connect_tcp" not in info.stderr
    debug = _afterload("check", str(loaded.path), "--log-level", "debug")
    assert debug.returncode == 0, debug.stdout + debug.stderr
    assert "HTTP Request" not in debug.stderr and API_KEY not in debug.stderr


def test_run_once_ends_with_a_summary(tmp_path: Path) -> None:
    proc = _afterload("run", str(_with_rejects(tmp_path)), "--once")
    assert proc.returncode == 0, proc.stderr
    last = proc.stderr.splitlines()[-1]
    assert "loaded 3 documents (" in last and "into 3 rows in 1 transaction," in last, last
    assert "documents/s; 1 rejected" in last


def test_status_json_has_stable_keys(tmp_path: Path) -> None:
    config = _with_rejects(tmp_path)
    assert _afterload("run", str(config), "--once").returncode == 0
    result = runner.invoke(app, ["status", str(config), "--json"])
    assert result.exit_code == 0, result.output
    state = json.loads(result.stdout)
    assert set(state) == {
        "materialization",
        "destination",
        "note",
        "last_commit",
        "transactions",
        "bindings",
        "dbt_job",
        "triggers",
    }
    (binding,) = state["bindings"]
    assert binding == {
        "binding": LONG,
        "source": f"data/{LONG}/*.jsonl",
        "files": 1,
        "committed_bytes": binding["source_bytes"],
        "source_bytes": (tmp_path / f"data/{LONG}/1.jsonl").stat().st_size,
        "lines": 4,
        "rows": 3,
    }
    assert state["transactions"] == 2  # the rejects file's size, then the data


def test_check_json(tmp_path: Path) -> None:
    loaded = write_config(tmp_path, [{"source": "nothing/*.jsonl", "table": "t", "key": ["/id"]}])
    result = runner.invoke(app, ["check", str(loaded.path), "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["ok"] is True
    assert [(c["check"], c["outcome"]) for c in body["checks"]] == [
        ("config", "ok"),
        ("destination", "ok"),
        ("source", "warning"),
        ("dbt_job", "ok"),
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("bindings: 3\n")
    result = runner.invoke(app, ["check", str(bad), "--json"])
    assert result.exit_code == 2  # as without --json
    body = json.loads(result.stdout)
    assert body["ok"] is False and "bad.yaml:1: bindings" in body["errors"][0]


def test_status_never_cuts_numbers_or_names(tmp_path: Path) -> None:
    binding = {"source": f"data/{LONG}/*.jsonl", "table": LONG, "key": ["/id"]}
    loaded = write_config(tmp_path, [binding])
    write_lines(tmp_path / f"data/{LONG}/1.jsonl", [{"id": i} for i in range(12_345)])
    assert _afterload("run", str(loaded.path), "--once").returncode == 0
    console = Console(file=io.StringIO(), width=40, record=True)
    assert materialization_status(load_config(loaded.path), console) == 0
    text = console.export_text()
    assert "…" not in text
    assert "12,345" in text  # lines and rows, whole
    first_column = [line.split("│")[1].strip() for line in text.splitlines() if "│" in line]
    assert LONG in "".join(first_column)  # folded onto several lines, never cut


def test_json_logs_end_in_json_too(tmp_path: Path) -> None:
    """Before, the error that ends a run was plain text among the JSON records."""
    loaded = write_config(tmp_path, [{"source": "*.jsonl", "table": "t", "key": ["/nope"]}])
    (tmp_path / "1.jsonl").write_text('{"id": 1}\n')
    proc = _afterload("--log-format", "json", "run", str(loaded.path), "--once")
    assert proc.returncode != 0
    records = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    errors = [r for r in records if r["level"] == "error"]
    assert errors and "/nope" in errors[-1]["event"], proc.stderr
