"""The DuckDB hand-over and the run slot, between real processes and threads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from afterload.triggers.dbt_core.locks import Busy, DuckDBTurns, RunSlot

HOLD = "import os, sys, time; fd = int(sys.argv[1]); print('held', flush=True); time.sleep(60)"


def test_a_child_holds_the_turn_as_long_as_it_lives(tmp_path: Path) -> None:
    """dbt inherits the turn: even when our own copy is closed, it stays taken until SIGKILL."""
    db = tmp_path / "w.duckdb"
    turns = DuckDBTurns(db)
    fd = turns.acquire()
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(fd)], pass_fds=(fd,), stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        os.close(fd)
        assert turns.busy()
        with pytest.raises(Busy), turns.turn(timeout=0.2):
            pass
    finally:
        child.kill()
        child.wait()
    started = time.monotonic()
    with turns.turn(timeout=5):
        duckdb.connect(str(db)).close()
    assert time.monotonic() - started < 1
    assert not turns.busy()


def test_a_waiting_party_is_served_before_a_busy_holder_comes_back(tmp_path: Path) -> None:
    """The loader committing back to back cannot starve a dbt waiting for its turn."""
    turns = DuckDBTurns(tmp_path / "w.duckdb")
    stop = threading.Event()
    commits = 0

    def committer() -> None:
        nonlocal commits
        while not stop.is_set():
            with turns.turn():
                time.sleep(0.05)  # a commit
                commits += 1

    loop = threading.Thread(target=committer)
    loop.start()
    try:
        time.sleep(0.2)
        waits = []
        for _ in range(5):
            t0 = time.monotonic()
            with turns.turn(timeout=5):
                waits.append(time.monotonic() - t0)
            time.sleep(0.1)
    finally:
        stop.set()
        loop.join()
    assert commits >= 5
    assert max(waits) < 1.0, waits


def test_the_slot_names_its_holder_and_frees_with_it(tmp_path: Path) -> None:
    slot = RunSlot(tmp_path)
    assert slot.holder() is None
    fd = slot.try_take()
    assert fd is not None
    RunSlot.record(fd, 4242)
    assert RunSlot(tmp_path).try_take() is None
    assert RunSlot(tmp_path).holder() == 4242
    os.close(fd)
    assert slot.holder() is None
    again = slot.try_take()
    assert again is not None
    os.close(again)
