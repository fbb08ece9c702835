"""``run --metrics-port``: a real ``afterload run`` process, scraped over HTTP while it runs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from afterload.triggers.dbt_cloud.emulator import DbtCloudEmulator, EmulatorServer
from tests.conftest import ACCOUNT, API_KEY, JOB
from tests.materialize_support import write_config, write_lines

ORDERS = {
    "source": "data/*.jsonl",
    "table": "orders",
    "key": ["/id"],
    "rejects": "rejects/orders.jsonl",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def samples(text: str) -> dict[str, float]:
    """``name{label="v",...}`` → value, for every sample in the exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            found[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return found


def scrape_until(
    url: str, ready: Callable[[dict[str, float]], bool], timeout: float = 30.0
) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    last: dict[str, float] = {}
    while time.monotonic() < deadline:
        try:
            last = samples(httpx.get(url, timeout=5).text)
        except httpx.TransportError:
            last = {}
        if ready(last):
            return last
        time.sleep(0.2)
    raise AssertionError(f"not reached; last scrape: {last}")


def test_a_running_process_serves_its_figures(
    tmp_path: Path, server: EmulatorServer, emulator: DbtCloudEmulator
) -> None:
    block = {
        "access_url": server.url,
        "account_id": ACCOUNT,
        "job_id": JOB,
        "api_key": API_KEY,
        "interval": "0s",
    }
    loaded = write_config(tmp_path, [ORDERS], dbt_job_trigger=block)
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1}, {"id": 2}, "{broken", {"id": 2}])
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "afterload", "run", str(loaded.path), "--metrics-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        m = scrape_until(url, lambda m: m.get("afterload_commits_total", 0) >= 1)
        assert m["afterload_documents_total"] == 3
        assert m["afterload_rows_total"] == 2  # reduced by key
        assert m["afterload_bytes_total"] > 0
        assert m["afterload_rejects_total"] == 1
        assert m["afterload_commit_duration_seconds_count"] == 1
        # New data while running: the counters move, the trigger decides again.
        write_lines(tmp_path / "data/2.jsonl", [{"id": 3}])
        trigger = f'trigger="dbt_job_trigger/{JOB}"'
        decided = [
            f'afterload_trigger_decisions_total{{outcome="{kind}",{trigger}}}'
            for kind in ("started", "skipped")
        ]
        m = scrape_until(
            url,
            lambda m: (
                m.get("afterload_commits_total", 0) >= 2 and sum(m.get(k, 0) for k in decided) >= 2
            ),
        )
        assert m["afterload_documents_total"] == 4
        assert m[f"afterload_api_calls_total{{{trigger}}}"] >= 4  # job check, list, list, POST
        assert m[f"afterload_api_retries_total{{{trigger}}}"] == 0
        assert "afterload_freshness_lag_seconds" not in str(m)  # no run has ended in success
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    # Gone with the run.
    try:
        httpx.get(url, timeout=1)
        raise AssertionError("the metrics server outlived its run")
    except httpx.TransportError:
        pass
