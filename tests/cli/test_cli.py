"""The command line: trigger, check, spec and config errors, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from afterload.cli import app
from afterload.triggers.dbt_cloud.emulator import DbtCloudEmulator, EmulatorServer
from tests.conftest import ACCOUNT, API_KEY, JOB

runner = CliRunner()


@pytest.fixture
def config_file(tmp_path: Path, server: EmulatorServer) -> Callable[..., Path]:
    def write(**extra: str) -> Path:
        lines = [
            "dbt_job_trigger:",
            f"  access_url: {server.url}/",
            f"  account_id: {ACCOUNT}",
            f"  job_id: {JOB}",
            "  api_key: ${TEST_DBT_KEY}",
        ]
        lines += [f"  {k}: {v}" for k, v in extra.items()]
        path = tmp_path / "afterload.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_DBT_KEY", API_KEY)


def test_trigger_prints_run_and_url(
    config_file: Callable[..., Path], emulator: DbtCloudEmulator
) -> None:
    result = runner.invoke(app, ["trigger", str(config_file(cause="cli test"))])
    assert result.exit_code == 0, result.output
    (run,) = emulator.runs
    assert f"started run {run['id']}" in result.output
    assert f"run {run['id']}: http" in result.output
    assert run["trigger"]["cause"] == "cli test"


def test_trigger_skip_when_active(config_file: Callable[..., Path]) -> None:
    path = config_file()
    runner.invoke(app, ["trigger", str(path)])
    result = runner.invoke(app, ["trigger", str(path)])
    assert result.exit_code == 0 and "skipped, run" in result.output


def test_trigger_wait_exit_codes(
    config_file: Callable[..., Path], emulator: DbtCloudEmulator
) -> None:
    result = runner.invoke(app, ["trigger", str(config_file(mode="ignore")), "--wait"])
    assert result.exit_code == 0, result.output
    assert "Success" in result.output
    result = runner.invoke(
        app, ["trigger", str(config_file(mode="ignore")), "--wait", "--timeout", "0s"]
    )
    assert result.exit_code == 3  # still queued when the timeout passed
    assert "still going after waiting 0s" in result.output  # said, not only the exit code


def test_trigger_wait_error_exit_code(
    config_file: Callable[..., Path], emulator: DbtCloudEmulator
) -> None:
    emulator.settings.fail_rate = 1.0
    result = runner.invoke(app, ["trigger", str(config_file(mode="ignore")), "--wait"])
    assert result.exit_code == 1 and "Error" in result.output


def test_check_ok_and_rejected_key(
    config_file: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config_file()
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert "✓ config" in result.output and f"✓ dbt Cloud job {JOB}" in result.output
    monkeypatch.setenv("TEST_DBT_KEY", "not-the-key-xyz")
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    assert "✗ dbt Cloud job" in result.output and "rejected the API key" in result.output
    assert "not-the-key-xyz" not in result.output


def test_check_reports_every_config_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("dbt_job_trigger:\n  access_url: https://x.us1.dbt.com\n  interval: soon\n")
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 2
    for key in ("account_id", "job_id", "api_key"):
        assert f"dbt_job_trigger.{key}: is required" in result.output
    assert "dbt_job_trigger.interval: 'soon' is not a duration" in result.output
    assert "Traceback" not in result.output


def test_trigger_without_block(tmp_path: Path) -> None:
    path = tmp_path / "none.yaml"
    path.write_text("{}\n")
    result = runner.invoke(app, ["trigger", str(path)])
    assert result.exit_code == 2 and "dbt_job_trigger" in result.output


def test_spec_is_the_json_schema() -> None:
    result = runner.invoke(app, ["spec"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$defs"]["DbtJobTrigger"]["properties"]["api_key"]["secret"] is True


def test_errors_have_no_traceback_in_a_real_process(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "afterload", "check", str(tmp_path / "missing.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "no such config file" in proc.stderr and "Traceback" not in proc.stderr
    unreachable = tmp_path / "down.yaml"
    unreachable.write_text(
        "dbt_job_trigger: {access_url: 'http://127.0.0.1:9', account_id: 1, job_id: 1,"
        " api_key: secret-down}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "afterload", "trigger", str(unreachable)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 1
    assert "http://127.0.0.1:9/api/v2/accounts/1/runs/" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr and "secret-down" not in proc.stderr + proc.stdout


def test_check_reaches_the_destination(tmp_path: Path) -> None:
    good = tmp_path / "duck.yaml"
    good.write_text(
        "name: s\ndestination: {duckdb: {path: w.duckdb}}\n"
        "bindings: [{source: 'd/*.jsonl', table: t, key: [/id]}]\n"
    )
    result = runner.invoke(app, ["check", str(good)])
    assert result.exit_code == 0, result.output
    assert "✓ destination:" in result.output and "created at the first commit" in result.output
    down = tmp_path / "pg.yaml"
    down.write_text(
        "name: s\ndestination:\n  postgres: {dsn: 'postgresql://postgres:pw-hidden-42@127.0.0.1:9/x'}\n"
    )
    result = runner.invoke(app, ["check", str(down)])
    assert result.exit_code == 1
    assert "✗ destination:" in result.output and "127.0.0.1:9" in result.output
    assert "pw-hidden-42" not in result.output
