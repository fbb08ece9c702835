"""The runtime stand-in drives a real connector process through whole sessions: pipelined
Loads, packed keys, SIGKILL at every point, and recovery through Opened's checkpoint.

The connector here is tests/flow/file_connector.py (a JSON file as destination); phase 2
points the same stand-in at ``afterload flow-connector`` on DuckDB and PostgreSQL.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.flow.standin import Doc, Standin, StandinError, binding, checkpoint, materialization

SPEC = materialization(
    "shop/m",
    [binding("shop/orders", {"table": "orders"}, keys=["id", "region"], values=["amount"])],
)


def spawn(state: Path) -> Standin:
    return Standin.spawn(
        [sys.executable, "-m", "tests.flow.file_connector", str(state)], timeout=20
    )


def key(n: int) -> list[object]:
    return [n, "é\x00ü" if n % 2 else "north"]


def doc(n: int, round_: int) -> dict[str, object]:
    return {"id": n, "region": key(n)[1], "amount": 2**63 - round_, "round": round_}


def run_rounds(rt: Standin, first: int, rounds: int) -> None:
    """Rounds ``first..first+rounds-1``: each stores keys 0..round, loading them first."""
    rt.acknowledge()
    for r in range(first, first + rounds):
        keys = [(0, key(n)) for n in range(r + 1)]
        loaded = rt.transaction(
            loads=keys,
            stores=[Doc(0, key(n), [2**63 - r], doc(n, r), exists=n < r) for n in range(r + 1)],
            checkpoint=checkpoint(r),
        )
        existing = list(range(r)) if r > 1 else []  # round 1 is the first: nothing exists
        assert sorted(d["id"] for _, d in loaded) == existing  # key r is new
        assert all(d["round"] == r - 1 for _, d in loaded)  # read committed: last round's
    rt.expect_acknowledged()


def test_a_session_recovers_its_checkpoint(tmp_path: Path) -> None:
    state = tmp_path / "dest.json"
    with spawn(state) as rt:
        assert rt.open(SPEC) is None
        run_rounds(rt, 1, 3)
        assert rt.close() == 0
    with spawn(state) as rt:
        assert rt.open(SPEC) == checkpoint(3)
        run_rounds(rt, 4, 1)
    rows = json.loads(state.read_text())["rows"]
    assert len(rows) == 5 and all(d["round"] == 4 for d in rows.values())


@pytest.mark.parametrize("kill_after", range(1, 14))
def test_sigkill_at_every_point_loses_nothing_and_applies_nothing_twice(
    tmp_path: Path, kill_after: int
) -> None:
    state = tmp_path / "dest.json"
    with spawn(state) as rt:
        rt.open(SPEC)
        rt.acknowledge()
        rt.expect_acknowledged()
        rt.loads([(0, key(0))])
        rt.flush(acknowledged_pending=False)
        rt.stores([Doc(0, key(0), [1], doc(0, 1))])
        rt.start_commit(checkpoint(1))
        rt.acknowledge()
        # Transaction 2, killed after `kill_after` messages of it were sent.
        messages = [
            lambda: rt.loads([(0, key(0))]),
            lambda: rt.loads([(0, key(1))]),
            lambda: rt.expect_acknowledged(),
            lambda: rt.send({"flush": {}}),
            lambda: rt.expect("loaded"),
            lambda: rt.expect("flushed"),
            lambda: rt.stores([Doc(0, key(0), [2], doc(0, 2), exists=True)]),
            lambda: rt.stores([Doc(0, key(1), [2], doc(1, 2))]),
            lambda: rt.send({"startCommit": {"runtimeCheckpoint": checkpoint(2)}}),
            lambda: rt.expect("startedCommit"),
            lambda: rt.acknowledge(),
            lambda: rt.expect_acknowledged(),
            lambda: rt.loads([(0, key(2))]),
        ]
        for step in messages[:kill_after]:
            step()
        rt.kill()
    committed = kill_after >= 10  # StartedCommit was read: the commit is durable
    with spawn(state) as rt:
        cp = rt.open(SPEC)
        if kill_after < 9:
            assert cp == checkpoint(1)
        elif committed:
            assert cp == checkpoint(2)
        # (killed right after sending StartCommit: either outcome, but all or nothing)
        rows = json.loads(state.read_text())["rows"]
        if cp == checkpoint(1):
            assert [d["round"] for d in rows.values()] == [1]
        else:
            assert sorted(d["round"] for d in rows.values()) == [2, 2]
        assert rt.close() == 0


def test_a_protocol_violation_exits_non_zero_with_one_sentence(tmp_path: Path) -> None:
    with spawn(tmp_path / "dest.json") as rt:
        rt.open(SPEC)
        rt.send({"flush": {}})
        with pytest.raises(StandinError, match="exited"):
            rt.receive()
        assert rt.process.returncode == 1
        assert any("received Flush while awaiting Acknowledge" in line for line in rt.stderr_lines)


def test_a_zombie_is_fenced_off(tmp_path: Path) -> None:
    state = tmp_path / "dest.json"
    with spawn(state) as zombie, spawn(state) as successor:
        zombie.open(SPEC)
        zombie.acknowledge()
        zombie.expect_acknowledged()
        successor.open(SPEC)  # raises the fence
        zombie.loads([])
        zombie.flush(acknowledged_pending=False)
        zombie.stores([Doc(0, key(9), [9], doc(9, 9))])
        zombie.send({"startCommit": {"runtimeCheckpoint": checkpoint(9)}})
        with pytest.raises(StandinError, match="exited"):
            zombie.receive()
        assert any("fenced off" in line for line in zombie.stderr_lines)
        successor.close()
    assert json.loads(state.read_text())["rows"] == {}
