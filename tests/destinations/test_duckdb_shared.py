"""A following ``afterload run`` lets other processes use its DuckDB file between commits.

Real processes only: the follower is a child ``afterload run``; the reader is another child
that opens the file (read-only, as a notebook or the ``duckdb`` CLI would) over and over while
lines keep arriving; a holder keeps the file open read-write for a while, so a commit has to
wait for it politely. Afterwards the table holds exactly the documents written.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from afterload.cli.status import materialization_status
from afterload.config import load_config
from afterload.destinations.base import LockedError
from afterload.destinations.duckdb.shared import OwnerLock, holder_of
from tests.materialize_support import rows, run_script, write_lines

pytestmark = pytest.mark.slow

READER = textwrap.dedent(
    """
    import sys, time, duckdb
    path, seconds = sys.argv[1], float(sys.argv[2])
    deadline = time.monotonic() + seconds
    reads = misses = 0
    while time.monotonic() < deadline:
        try:
            con = duckdb.connect(path, read_only=True)
        except duckdb.IOException:
            misses += 1
            time.sleep(0.02)
            continue
        try:
            con.execute("select count(*) from orders").fetchone()
            reads += 1
        except duckdb.CatalogException:
            pass
        finally:
            con.close()
        time.sleep(0.05)
    print(reads, misses, flush=True)
    """
)

HOLDER = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])  # read-write, as a notebook that writes would
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
    """
)


def config(tmp_path: Path) -> Path:
    path = tmp_path / "afterload.yaml"
    path.write_text(
        "name: shop\n"
        "destination: {duckdb: {path: warehouse.duckdb}}\n"
        "syncSchedule: {syncFrequency: 0s}\n"
        "bindings: [{source: data/*.jsonl, table: orders, key: [/id]}]\n"
    )
    return path


def wait_for(check: object, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_reader_in_another_process_queries_between_commits(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    db = tmp_path / "warehouse.duckdb"
    write_lines(tmp_path / "data/1.jsonl", [{"id": i, "n": "first"} for i in range(50)])
    follower = subprocess.Popen(run_script(cfg, once=False), stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: db.exists() and OwnerLock(db).path.exists())
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(db), "4"], stdout=subprocess.PIPE, text=True
        )
        # Keep data coming while the reader reads: a commit about every 0.1 s.
        for batch in range(30):
            docs = [{"id": 1000 + batch * 10 + i, "n": "\u00e9\x00"} for i in range(10)]
            write_lines(tmp_path / "data/2.jsonl", docs, append=True)
            time.sleep(0.1)
        out, _ = reader.communicate(timeout=60)
        reads, misses = map(int, out.split())
        assert reads >= 10, (reads, misses)  # the file was free between commits, many times
        # `afterload status` reads the committed offsets while the follower runs.
        console_text = _status_text(cfg)
        assert "?" not in console_text.split("last commit")[0]
        assert "last commit:" in console_text
    finally:
        follower.send_signal(signal.SIGTERM)
        _, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert rows(db, "select count(*), count(distinct id) from orders") == [(350, 350)]
    assert rows(db, "select count(*) from orders where n = 'first'") == [(50,)]


def test_a_backfill_ending_on_a_transaction_boundary_lets_the_file_go(tmp_path: Path) -> None:
    """Ten lines in transactions of five: both commits are full and keep the file for the next
    one. Before, nothing let it go once no line came, so readers were locked out until one
    did."""
    cfg = config(tmp_path)
    cfg.write_text(cfg.read_text() + "transaction: {max_documents: 5}\n")
    db = tmp_path / "warehouse.duckdb"
    write_lines(tmp_path / "data/1.jsonl", [{"id": i} for i in range(10)])
    follower = subprocess.Popen(run_script(cfg, once=False), stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: db.exists() and _committed(db) == 10)
    finally:
        follower.send_signal(signal.SIGTERM)
        _, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err


def test_a_reader_in_the_same_process_is_waited_for(tmp_path: Path) -> None:
    """The Python API beside a notebook's read-only connection in one process: DuckDB's file
    lock does not apply there, and opening the file read-write raised "different
    configuration" in the commit thread, which ended the run."""
    import threading

    import duckdb

    from afterload.core.stopper import Stopper
    from afterload.pipeline import materialize

    cfg = config(tmp_path)
    db = tmp_path / "warehouse.duckdb"
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1}])
    stopper = Stopper()
    errors: list[BaseException] = []

    def follow() -> None:
        try:
            materialize(load_config(cfg), once=False, stopper=stopper)
        except BaseException as exc:
            errors.append(exc)

    follower = threading.Thread(target=follow)
    follower.start()
    try:
        wait_for(lambda: _committed(db) == 1)
        reader = duckdb.connect(str(db), read_only=True)
        try:
            write_lines(tmp_path / "data/1.jsonl", [{"id": 2}], append=True)
            time.sleep(1.5)  # the commit waits for the reader
            assert follower.is_alive() and not errors
        finally:
            reader.close()
        wait_for(lambda: _committed(db) == 2)
    finally:
        stopper.request("test")
        follower.join(60)
    assert not errors, errors


def test_a_commit_waits_politely_for_a_process_holding_the_file(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    db = tmp_path / "warehouse.duckdb"
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1}])
    follower = subprocess.Popen(run_script(cfg, once=False), stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: db.exists() and _committed(db) == 1)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(db), "2"], stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        held_at = time.monotonic()
        write_lines(tmp_path / "data/1.jsonl", [{"id": 2}, {"id": 3}], append=True)
        holder.wait(timeout=30)
        wait_for(lambda: _committed(db) == 3)
        assert time.monotonic() - held_at >= 1.5  # it could only commit once the holder left
    finally:
        follower.send_signal(signal.SIGTERM)
        _, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    # One line for the wait, naming the holder (the test's own reads may cause others).
    waits = [line for line in err.splitlines() if f"held by pid {holder.pid} " in line]
    assert len(waits) == 1, err
    assert "the commit waits until it lets go" in waits[0]
    assert rows(db, "select id from orders order by id") == [(1,), (2,), (3,)]


def test_a_second_run_on_the_same_file_is_still_refused(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1}])
    follower = subprocess.Popen(run_script(cfg, once=False), stderr=subprocess.PIPE, text=True)
    try:
        db = tmp_path / "warehouse.duckdb"
        wait_for(lambda: db.exists() and _committed(db) == 1)
        second = subprocess.run(run_script(cfg, once=True), capture_output=True, text=True)
        assert second.returncode == 1
        assert f"another afterload process (pid {follower.pid}) holds" in second.stdout + (
            second.stderr
        )
    finally:
        follower.send_signal(signal.SIGTERM)
        follower.communicate(timeout=60)
    with pytest.raises(LockedError):
        lock = OwnerLock(db)
        lock.take()
        try:
            OwnerLock(db).take()
        finally:
            lock.release()


def test_the_holder_is_named_from_duckdbs_message() -> None:
    text = (
        'Could not set lock on file "w.duckdb": Conflicting lock is held in '
        "/usr/bin/python3.11 (PID 4242) by user x."
    )
    assert holder_of(text) == "pid 4242 (python3.11)"
    assert holder_of("something else") == "another process"


def _committed(db: Path) -> int:
    try:
        found = rows(db, "select count(*) from orders")
    except Exception:
        return -1
    return int(found[0][0])


def _status_text(cfg: Path) -> str:
    from rich.console import Console

    console = Console(record=True, width=200, file=open("/dev/null", "w"))  # noqa: SIM115
    assert materialization_status(load_config(cfg), console) == 0
    return console.export_text()


def test_a_ledger_row_waits_for_a_reader_holding_the_released_file(tmp_path: Path) -> None:
    """Between commits the file is let go; a run's decision is written as dbt starts, when a
    reader (dbt, a notebook) may hold it. The row failed at once ("a connection in this
    process holds …") and the run's decision and end were lost; it waits a bounded time now."""
    import threading

    import duckdb

    from afterload.destinations.duckdb.shared import SharedDuckDBDestination
    from tests.destinations.test_ledger import entry

    db = tmp_path / "w.duckdb"
    dest = SharedDuckDBDestination(db)
    dest.open("shop")
    dest.release()
    reader = duckdb.connect(str(db), read_only=True)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            dest.record_run(entry(1, run_id=5))
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=write)
    try:
        writer.start()
        time.sleep(1.0)
        assert writer.is_alive()  # waiting for the reader, not failed
    finally:
        reader.close()
    writer.join(30)
    try:
        assert not errors, errors
        assert [e.run_id for e in dest.read_runs("shop")] == [5]
    finally:
        dest.close()
