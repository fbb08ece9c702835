"""Issue 9, "silence where a user needs a word": each case as a user meets it."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from afterload.cli import app
from afterload.config.load import load_config
from afterload.core.stopper import Stopper
from afterload.ndjson.sources import Source
from afterload.pipeline import materialize
from afterload.triggers.dbt_cloud.emulator import DbtCloudEmulator, EmulatorServer
from tests.conftest import ACCOUNT, API_KEY, JOB
from tests.materialize_support import write_config, write_lines

runner = CliRunner()
AFTERLOAD = [sys.executable, "-m", "afterload"]
TYPO = {"source": "data/ordrs/*.jsonl", "table": "orders", "key": ["/id"]}


def _free_port() -> int:
    """A loopback port nothing listens on: connections to it are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_glob_matching_no_file_is_a_warning_in_run_once_and_check(tmp_path: Path) -> None:
    loaded = write_config(tmp_path, [TYPO])
    proc = subprocess.run(
        [*AFTERLOAD, "run", str(loaded.path), "--once"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "orders: data/ordrs/*.jsonl matches no file" in proc.stderr
    result = runner.invoke(app, ["check", str(loaded.path)])
    assert result.exit_code == 0, result.output  # a warning, not a failure
    assert "! orders: data/ordrs/*.jsonl matches no file" in result.output


def test_following_an_empty_glob_says_so_once_then_picks_the_file_up(tmp_path: Path) -> None:
    loaded = write_config(tmp_path, [TYPO])
    proc = subprocess.Popen(
        [*AFTERLOAD, "run", str(loaded.path)], stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True)
    reader.start()

    def seen(text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in lines):
            assert time.monotonic() < deadline, f"never logged {text!r}: {lines}"
            time.sleep(0.05)

    try:
        seen("waiting for files to appear")
        time.sleep(2.5)  # several more looks at the glob (one a second): no more words
        write_lines(tmp_path / "data/ordrs/1.jsonl", [{"id": 1}])
        seen("committed transaction 1: 1 documents")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(timeout=10)
    stderr = "".join(lines)
    assert proc.returncode == 0, stderr
    assert stderr.count("matches no file") == 1, stderr
    assert "orders: data/ordrs/*.jsonl matches no file; waiting for files to appear" in stderr
    assert "orders: data/ordrs/*.jsonl now matches a file" in stderr


def test_complete_lines_left_unread_are_not_a_partial_line(tmp_path: Path) -> None:
    data = tmp_path / "a.jsonl"
    write_lines(data, [{"id": i} for i in range(10)])
    source = Source("*.jsonl", tmp_path, {})
    chunk = source.read(3, 1 << 20)  # a stop after three lines: seven complete ones are left
    assert chunk is not None and len(chunk.lines) == 3
    assert list(source.pending()) == []
    with open(data, "a") as f:
        f.write('{"id": 10')  # a writer half-way through its last line
    while source.read(100, 1 << 20) is not None:
        pass
    assert list(source.pending()) == ["a.jsonl"]
    source.close()


def test_stopped_run_once_says_nothing_false_about_partial_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Ctrl-C during ``run --once`` on complete files: no "partial line" message."""
    loaded = write_config(tmp_path, [{"source": "data/*.jsonl", "table": "t", "key": ["/id"]}])
    write_lines(tmp_path / "data/1.jsonl", [{"id": i} for i in range(2000)])
    loaded = load_config(loaded.path)
    stopper = Stopper()
    original = Source.read

    def read_then_stop(self: Source, max_lines: int, max_bytes: int, wait: float = 0.0) -> Any:
        chunk = original(self, min(max_lines, 100), max_bytes, wait)
        stopper.request("SIGINT")  # as the signal handler does, after the first chunk
        return chunk

    caplog.set_level(logging.INFO)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Source, "read", read_then_stop)
        report = materialize(loaded, once=True, stopper=stopper)
    assert 0 < report.documents < 2000
    assert "partial line" not in caplog.text


def test_transaction_numbers_continue_across_processes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loaded = write_config(tmp_path, [{"source": "data/*.jsonl", "table": "t", "key": ["/id"]}])
    caplog.set_level(logging.INFO, logger="afterload.materializer")
    for n in range(3):
        write_lines(tmp_path / f"data/{n}.jsonl", [{"id": n}])
        materialize(load_config(loaded.path), once=True)
    committed = re.findall(r"committed transaction (\d+)", caplog.text)
    assert committed == ["1", "2", "3"]


def test_wait_without_once_is_a_usage_error(tmp_path: Path) -> None:
    loaded = write_config(tmp_path, [TYPO])
    result = runner.invoke(app, ["run", str(loaded.path), "--wait"])
    assert result.exit_code == 2
    assert "--wait needs --once" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_run_once_wait_logs_the_started_run_once(
    tmp_path: Path, server: EmulatorServer, emulator: DbtCloudEmulator
) -> None:
    trigger = {
        "access_url": server.url,
        "account_id": ACCOUNT,
        "job_id": JOB,
        "api_key": API_KEY,
        "interval": "0s",
    }
    binding = {"source": "data/*.jsonl", "table": "t", "key": ["/id"]}
    loaded = write_config(tmp_path, [binding], dbt_job_trigger=trigger)
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1}])
    result = runner.invoke(app, ["run", str(loaded.path), "--once", "--wait"])
    assert result.exit_code == 0, result.output
    (run,) = emulator.runs
    assert result.output.count(f"started run {run['id']}") == 1, result.output


@pytest.mark.parametrize("command", ["check", "status"])
def test_interactive_commands_answer_fast_when_dbt_cloud_is_down(
    tmp_path: Path, command: str
) -> None:
    trigger = {
        "access_url": f"http://127.0.0.1:{_free_port()}",
        "account_id": 1,
        "job_id": 1,
        "api_key": "secret-never-shown",
    }
    loaded = write_config(tmp_path, [TYPO], dbt_job_trigger=trigger)
    started = time.monotonic()
    proc = subprocess.run(
        [*AFTERLOAD, command, str(loaded.path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "AFTERLOAD_DBT_TIMEOUT"},
    )
    elapsed = time.monotonic() - started
    output = proc.stdout + proc.stderr
    assert elapsed < 12, f"{command} took {elapsed:.1f}s"  # was 16–18 s of retries
    assert "connection was refused" in output, output
    assert "secret-never-shown" not in output and "Traceback" not in output
    assert proc.returncode == (1 if command == "check" else 0)


def test_the_demo_hint_works_with_the_users_path(tmp_path: Path) -> None:
    demo = subprocess.run(
        [*AFTERLOAD, "demo", "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert demo.returncode == 0, demo.stderr
    match = re.search(r"try it yourself: (afterload status \S+)", demo.stdout)
    assert match, demo.stdout
    hint = match.group(1).split()
    assert hint[2] == "demo-output/afterload.yaml"  # as the user, in tmp_path, would type it
    started = time.monotonic()
    status = subprocess.run(
        [*AFTERLOAD, *hint[1:]], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert status.returncode == 0, status.stderr
    assert time.monotonic() - started < 15
    assert "orders" in status.stdout and "cannot list runs" not in status.stdout
