"""Webhooks wired into `run`: real runs, a real receiver on loopback, real SIGKILLed processes.

The pending window is committed with the data, so a delivery that failed — or never began —
survives a SIGKILL and is delivered by the next process, byte for byte the same.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from afterload.config import load_config
from afterload.core.checkpoint import Checkpoint
from afterload.pipeline import materialize
from tests.materialize_support import Warehouse, rows, run_script, write_config, write_lines
from tests.webhook_receiver import Answer, Receiver

TEMPLATE = (
    '{"m": "{{materialization_name}}", "tables": [{{#each collection_names}}"{{this}}"'
    '{{#unless @last}}, {{/unless}}{{/each}}], "lo": "{{flow_published_at_min}}", '
    '"hi": "{{flow_published_at_max}}", "run_id": "{{run_id}}", "image": "{{connector_image}}", '
    '"key": "{{headers.X-Key}}"}'
)
BINDINGS = [
    {"source": "in/orders*.ndjson", "table": "orders", "key": ["/id"]},
    {"source": "in/users*.ndjson", "table": "users", "key": ["/id"]},
]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def hook_block(receiver: Receiver, **webhook: Any) -> dict[str, Any]:
    interval = webhook.pop("interval", None)
    hook = {
        "url": receiver.url + "/hook/secret-path",
        "headers": {"X-Key": "hook-secret-123"},
        "payloadTemplate": TEMPLATE,
        "maxAttempts": 1,
        **webhook,
    }
    block: dict[str, Any] = {"config": [hook]}
    if interval is not None:
        block["interval"] = interval
    return block


def stored_triggers(db: Path) -> dict[str, Any]:
    text = rows(db, "SELECT checkpoint FROM _afterload_checkpoints")[0][0]
    return Checkpoint.from_json(text).triggers


def test_once_delivers_the_tables_that_received_data_then_records_it(
    tmp_path: Path, receiver: Receiver
) -> None:
    write_lines(tmp_path / "in/orders1.ndjson", [{"id": 1}, {"id": 2}])
    write_lines(tmp_path / "in/users1.ndjson", [])
    loaded = write_config(tmp_path, BINDINGS, triggers=hook_block(receiver))

    report = materialize(loaded, once=True)

    assert report.documents == 2
    [request] = receiver.requests
    assert request.method == "POST" and request.path == "/hook/secret-path"
    assert request.headers["x-key"] == "hook-secret-123"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["m"] == "shop" and body["tables"] == ["orders"] and body["key"] == "hook-secret-123"
    assert body["lo"] == body["hi"] and body["lo"].endswith("Z")
    assert body["run_id"].endswith("Z") and body["image"].startswith("afterload:")
    assert [f.kind for f in report.fires] == ["started"]
    # The delivery was recorded with the checkpoint: nothing is pending, nothing re-sent.
    assert stored_triggers(tmp_path / "warehouse.duckdb") == {}
    materialize(loaded, once=True)
    assert len(receiver.requests) == 1

    write_lines(tmp_path / "in/users1.ndjson", [{"id": "u"}], append=True)
    write_lines(tmp_path / "in/orders2.ndjson", [{"id": 3}])
    materialize(loaded, once=True)
    assert len(receiver.requests) == 2
    assert receiver.requests[1].json()["tables"] == ["orders", "users"]


def test_a_failed_delivery_keeps_the_data_and_stays_pending_for_the_next_run(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.default = Answer(status=503)
    write_lines(tmp_path / "in/orders1.ndjson", [{"id": 1}])
    loaded = write_config(tmp_path, BINDINGS, triggers=hook_block(receiver))

    report = materialize(loaded, once=True)

    db = tmp_path / "warehouse.duckdb"
    assert rows(db, "SELECT id FROM orders") == [(1,)]  # committed whatever the webhook did
    assert [f.kind for f in report.fires] == ["failed"]
    assert "hook-secret-123" not in report.fires[0].message
    assert "secret-path" not in report.fires[0].message
    pending = stored_triggers(db)["webhook:trigger0"]
    assert pending["sealed"]["collections"] == ["orders"]
    first = receiver.requests[0].body

    # The next run delivers the same window first (same bytes, same run_id), then its own.
    receiver.default = Answer(status=200)
    write_lines(tmp_path / "in/orders2.ndjson", [{"id": 2}])
    report = materialize(loaded, once=True)
    assert [f.kind for f in report.fires] == ["started", "started"]
    assert receiver.requests[1].body == first
    assert receiver.requests[2].json()["run_id"] != receiver.requests[1].json()["run_id"]
    assert stored_triggers(db) == {}


def test_interval_leaves_the_newer_window_pending_for_a_later_run(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.default = Answer(status=500)
    write_lines(tmp_path / "in/orders1.ndjson", [{"id": 1}])
    loaded = write_config(tmp_path, BINDINGS, triggers=hook_block(receiver, interval="1h"))
    materialize(loaded, once=True)
    receiver.default = Answer(status=200)
    write_lines(tmp_path / "in/users1.ndjson", [{"id": 1}])
    materialize(loaded, once=True)
    # The failed window went out; the newer one waits for its interval.
    assert [r.status for r in receiver.requests] == [500, 200]
    pending = stored_triggers(tmp_path / "warehouse.duckdb")["webhook:trigger0"]
    assert pending["sealed"] is None and pending["open"]["collections"] == ["users"]


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_pending_window_survives_sigkill_of_a_real_run(tmp_path: Path, receiver: Receiver) -> None:
    receiver.default = Answer(status=503)
    write_lines(tmp_path / "in/orders1.ndjson", [{"id": 1}, {"id": 2}])
    write_lines(tmp_path / "in/users1.ndjson", [{"id": 7}])
    write_config(tmp_path, BINDINGS, triggers=hook_block(receiver))
    argv = run_script(tmp_path / "afterload.yaml", once=False)

    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(receiver.requests) >= 1, 30, "the first (failing) delivery")
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert "hook-secret-123" not in err and "secret-path" not in err
    failed = receiver.requests[0]

    receiver.default = Answer(status=200)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(receiver.requests) >= 2, 30, "the pending window's delivery")
        time.sleep(0.2)  # …and nothing more; the clean stop records the delivery
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert len(receiver.requests) == 2
    assert receiver.requests[1].body == failed.body
    assert json.loads(failed.body)["tables"] == ["orders", "users"]
    # The delivery was recorded before the clean stop: a third process sends nothing.
    assert stored_triggers(tmp_path / "warehouse.duckdb") == {}
    assert load_config(tmp_path / "afterload.yaml").config.triggers is not None


@pytest.mark.parametrize("kind", ["postgres"])
def test_a_hung_receiver_never_delays_commits_and_no_window_goes_twice(
    tmp_path: Path, receiver: Receiver, kind: str
) -> None:
    """Followed by a real process: commits land while a delivery hangs; each commit is in
    exactly one delivered window, and windows arrive in commit order."""
    warehouse = Warehouse(kind, tmp_path)
    receiver.default = Answer(status=200)
    receiver.script(Answer(status=200, delay=4.0))  # the first delivery hangs 4 s
    write_lines(tmp_path / "in/orders1.ndjson", [{"id": 0}])
    write_config(
        tmp_path,
        BINDINGS,
        warehouse=warehouse,
        triggers=hook_block(receiver, timeout="30s"),
    )
    argv = run_script(tmp_path / "afterload.yaml", once=False)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(receiver.requests) >= 1, 30, "the first delivery")
        for i in range(1, 4):  # commits while the first delivery hangs
            write_lines(tmp_path / f"in/orders{i + 1}.ndjson", [{"id": i}])
            wait_for(
                lambda i=i: warehouse.rows(f"SELECT count(*) FROM orders WHERE id = {i}") == [(1,)],
                3,
                f"commit of order {i} while the receiver hangs",
            )
        assert len(receiver.requests) == 1  # still in flight
        wait_for(lambda: len(receiver.requests) >= 2, 30, "the second window")
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        warehouse.drop()
    assert proc.returncode == 0, err
    run_ids = [r.json()["run_id"] for r in receiver.requests]
    assert len(run_ids) == len(set(run_ids)) == 2
    assert run_ids == sorted(run_ids)


def test_a_stop_during_a_hung_delivery_ends_cleanly(tmp_path: Path, receiver: Receiver) -> None:
    """SIGTERM while a delivery hangs past the stop's grace: the delivery is cancelled (its
    window stays pending in the checkpoint) and the run exits 0. Before, it ended in a
    CancelledError traceback."""
    warehouse = Warehouse("duckdb", tmp_path)
    receiver.script(Answer(status=200, delay=60.0))
    write_lines(tmp_path / "in/orders1.ndjson", [{"id": 0}])
    write_config(
        tmp_path, BINDINGS, warehouse=warehouse, triggers=hook_block(receiver, timeout="60s")
    )
    argv = run_script(tmp_path / "afterload.yaml", once=False)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(receiver.requests) >= 1, 30, "the delivery")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "stopped with a delivery in flight" in err


def test_status_says_what_a_webhook_still_owes(tmp_path: Path, receiver: Receiver) -> None:
    """Before, status read a webhook's pending windows as a dbt job's state: "no data
    committed yet, no run needed" while a failed delivery was owed."""
    from rich.console import Console

    from afterload.cli.status_view import collect_status, print_status

    warehouse = Warehouse("duckdb", tmp_path)
    receiver.default = Answer(status=500)
    write_lines(tmp_path / "in/orders1.ndjson", [{"id": 1}])
    write_config(tmp_path, BINDINGS, warehouse=warehouse, triggers=hook_block(receiver))
    loaded = load_config(tmp_path / "afterload.yaml")
    materialize(loaded, once=True)
    (item,) = collect_status(loaded).triggers
    assert item["trigger"] == "webhook:trigger0" and item["pending"]
    assert [(w["first_transaction"], w["last_transaction"]) for w in item["owed"]] == [(1, 1)]
    console = Console(record=True, width=200, file=open("/dev/null", "w"))  # noqa: SIM115
    print_status(loaded, console)
    assert "webhook:trigger0: transaction 1 (orders) committed since" in console.export_text()

    receiver.default = Answer(status=200)
    materialize(loaded, once=True)  # the owed window is delivered at start
    (item,) = collect_status(loaded).triggers
    assert not item["pending"] and item["owed"] == []
