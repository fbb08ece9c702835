"""`afterload flow-connector` end to end: the stand-in drives the real connector process
into real DuckDB and PostgreSQL, with SIGKILLs between the steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.flow.standin import Doc, Standin, StandinError, binding, checkpoint, materialization
from tests.materialize_support import Warehouse as Target

BIG = 2**70 + 1


def _projections() -> list[dict[str, Any]]:
    return [
        {
            "ptr": "/id",
            "field": "id",
            "isPrimaryKey": True,
            "inference": {"types": ["integer"], "exists": "MUST"},
        },
        {
            "ptr": "/k/name",
            "field": "k/name",
            "isPrimaryKey": True,
            "inference": {"types": ["string"], "exists": "MUST"},
        },
        {"ptr": "/v", "field": "v", "inference": {"types": ["string", "null"]}},
        {"ptr": "/n", "field": "n", "inference": {"types": ["integer", "null"]}},
        {"ptr": "", "field": "flow_document", "inference": {"types": ["object"]}},
        {  # every Flow collection has it; afterload fills its own flow_published_at
            "ptr": "/_meta/uuid",
            "field": "flow_published_at",
            "inference": {"types": ["string"], "string": {"format": "date-time"}},
        },
    ]


def _spec(
    target: Target, tmp_path: Path, *, hard: bool = False, delta: bool = False
) -> dict[str, Any]:
    block = target.block
    if target.kind == "duckdb":
        block = {"duckdb": {"path": str(tmp_path / "warehouse.duckdb")}}
    return materialization(
        "acmeCo/m",
        [
            binding(
                "acmeCo/things",
                {"table": "things", "delta_updates": delta},
                keys=["id", "k/name"],
                values=["v", "n"],
                delta_updates=delta,
                projections=_projections(),
            )
        ],
        config={"destination": block, "hardDelete": hard},
    )


def _doc(
    i: int, name: str, v: str | None, n: int | None, *, exists: bool = False, delete: bool = False
) -> Doc:
    doc: dict[str, Any] = {"id": i, "k": {"name": name}, "v": v, "n": n}
    if delete:
        doc["_meta"] = {"op": "d"}
    return Doc(0, [i, name], [v, n], doc, exists=exists, delete=delete)


@pytest.fixture(params=["duckdb", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    t = Target(request.param, tmp_path)
    yield t
    t.drop()


def _table(target: Target) -> list[tuple[Any, ...]]:
    return sorted(target.rows('SELECT id, "k/name", v, n, flow_document FROM things'))


def test_session_loads_stores_deletes_and_restart(target: Target, tmp_path: Path) -> None:
    spec = _spec(target, tmp_path, hard=True)
    with Standin.spawn() as rt:
        assert rt.open(spec) == {}  # ExplicitZero: nothing committed, start from scratch
        rt.acknowledge()
        rt.transaction(
            loads=[(0, [1, "a"]), (0, [2, "ü\u0000" if target.kind == "duckdb" else "ü"])],
            stores=[
                _doc(1, "a", "one", 1),
                _doc(2, "ü", "two", BIG),
                _doc(3, "x", "gone", 3),
            ],
            checkpoint=checkpoint(1),
            next_loads=[(0, [1, "a"]), (0, [3, "x"]), (0, [9, "none"])],
        )
        loaded = rt.flush(acknowledged_pending=True)
        assert sorted(d["id"] for _, d in loaded) == [1, 3]
        assert {d["id"]: d for _, d in loaded}[1]["v"] == "one"
        rt.stores(
            [
                _doc(1, "a", "uno", None, exists=True),
                _doc(3, "x", None, None, exists=True, delete=True),
            ]
        )
        rt.start_commit(checkpoint(2))
        rt.acknowledge()
        rt.expect_acknowledged()
        assert rt.close() == 0
    rows = _table(target)
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [(1, "a", "uno", None), (2, "ü", "two", BIG)]
    assert json.loads(rows[1][4])["n"] == BIG
    with Standin.spawn() as rt:
        assert rt.open(spec) == checkpoint(2)
        rt.acknowledge()
        rt.expect_acknowledged()
        assert rt.close() == 0


@pytest.mark.parametrize(
    "point", ["before_flush", "after_stores", "after_start_commit", "after_acknowledge"]
)
def test_sigkill_then_restart_recovers(target: Target, tmp_path: Path, point: str) -> None:
    spec = _spec(target, tmp_path)
    with Standin.spawn() as rt:
        rt.open(spec)
        rt.acknowledge()
        rt.transaction(loads=[], stores=[_doc(1, "a", "one", 1)], checkpoint=checkpoint(1))
        rt.expect_acknowledged()
        committed = checkpoint(1)
        rows = [(1, "a", "one", 1)]
        rt.loads([(0, [2, "b"])])
        if point != "before_flush":
            rt.flush(acknowledged_pending=False)
            rt.stores([_doc(2, "b", "two", 2)])
            if point in ("after_start_commit", "after_acknowledge"):
                rt.start_commit(checkpoint(2))
                committed = checkpoint(2)
                rows = [(1, "a", "one", 1), (2, "b", "two", 2)]
                if point == "after_acknowledge":
                    rt.acknowledge()
        rt.kill()
    with Standin.spawn() as rt:
        assert rt.open(spec) == committed
        rt.acknowledge()
        rt.expect_acknowledged()
        assert rt.close() == 0
    assert [(r[0], r[1], r[2], r[3]) for r in _table(target)] == rows


def test_nul_on_postgres_is_one_sentence(tmp_path: Path) -> None:
    target = Target("postgres", tmp_path)
    try:
        with Standin.spawn() as rt:
            rt.open(_spec(target, tmp_path))
            rt.acknowledge()
            rt.loads([])
            rt.flush(acknowledged_pending=True)
            rt.stores([_doc(5, "a\u0000b", "x", 1)])
            rt.send({"startCommit": {"runtimeCheckpoint": checkpoint(1)}})
            with pytest.raises(StandinError):
                rt.expect("startedCommit")
            assert rt.process.wait(10) == 1
        assert any("NUL" in line and "binding 0" in line for line in rt.stderr_lines)
    finally:
        target.drop()


def test_zombie_of_same_range_is_fenced_and_ranges_side_by_side(tmp_path: Path) -> None:
    target = Target("postgres", tmp_path)
    spec = _spec(target, tmp_path)
    try:
        with Standin.spawn() as old, Standin.spawn() as new, Standin.spawn() as other:
            old.open(spec, key_begin=0, key_end=0x7FFFFFFF)
            old.acknowledge()
            old.expect_acknowledged()
            new.open(spec, key_begin=0, key_end=0x7FFFFFFF)
            new.acknowledge()
            new.expect_acknowledged()
            other.open(spec, key_begin=0x80000000, key_end=0xFFFFFFFF)
            other.acknowledge()
            other.transaction(
                loads=[], stores=[_doc(7, "o", "other", 7)], checkpoint=checkpoint(7, "b")
            )
            other.expect_acknowledged()
            old.loads([])
            old.flush(acknowledged_pending=False)
            old.stores([_doc(1, "z", "zombie", 1)])
            old.send({"startCommit": {"runtimeCheckpoint": checkpoint(1)}})
            with pytest.raises(StandinError):
                old.expect("startedCommit")
            assert old.process.wait(10) == 1
            new.transaction(
                loads=[],
                stores=[_doc(2, "n", "new", 2)],
                checkpoint=checkpoint(2),
                acknowledged_pending=False,
            )
            new.expect_acknowledged()
        assert any("opened by another process" in line for line in old.stderr_lines)
        assert [(r[0], r[2]) for r in _table(target)] == [(2, "new"), (7, "other")]
    finally:
        target.drop()


def test_split_range_inherits_parent_checkpoint_and_duckdb_refuses(tmp_path: Path) -> None:
    target = Target("postgres", tmp_path)
    spec = _spec(target, tmp_path)
    try:
        with Standin.spawn() as rt:
            rt.open(spec)
            rt.acknowledge()
            rt.transaction(loads=[], stores=[_doc(1, "a", "one", 1)], checkpoint=checkpoint(5))
            rt.expect_acknowledged()
            assert rt.close() == 0
        with Standin.spawn() as rt:
            assert rt.open(spec, key_begin=0x80000000, key_end=0xFFFFFFFF) == checkpoint(5)
    finally:
        target.drop()
    duck = Target("duckdb", tmp_path)
    with Standin.spawn() as rt:
        rt.send(
            {"open": {"materialization": _spec(duck, tmp_path), "range": {"keyEnd": 0x7FFFFFFF}}}
        )
        assert rt.process.wait(30) == 1
    assert any("single writer" in line for line in rt.stderr_lines)


def test_a_zombie_of_a_split_parent_range_is_fenced(tmp_path: Path) -> None:
    """The full range's process still runs when its two halves open: it must commit nothing
    more (Estuary's installFence raises every overlapping row's fence). Before, it committed,
    and the halves, resuming from its older checkpoint, would apply that transaction again."""
    target = Target("postgres", tmp_path)
    spec = _spec(target, tmp_path)
    try:
        with Standin.spawn() as parent:
            parent.open(spec)
            parent.acknowledge()
            parent.transaction(loads=[], stores=[_doc(1, "a", "one", 1)], checkpoint=checkpoint(1))
            parent.expect_acknowledged()
            with Standin.spawn() as low, Standin.spawn() as high:
                assert low.open(spec, key_begin=0, key_end=0x7FFFFFFF) == checkpoint(1)
                assert high.open(spec, key_begin=0x80000000, key_end=0xFFFFFFFF) == checkpoint(1)
                parent.loads([])
                parent.flush(acknowledged_pending=False)
                parent.stores([_doc(2, "z", "zombie", 2)])
                parent.send({"startCommit": {"runtimeCheckpoint": checkpoint(2)}})
                with pytest.raises(StandinError):
                    parent.expect("startedCommit")
                assert parent.process.wait(10) == 1
        assert [(r[0], r[2]) for r in _table(target)] == [(1, "one")]
    finally:
        target.drop()


def test_delta_appends_and_soft_delete_keeps_the_deletion_document(
    target: Target, tmp_path: Path
) -> None:
    with Standin.spawn() as rt:
        rt.open(_spec(target, tmp_path, delta=True))
        rt.acknowledge()
        rt.expect_acknowledged()
        for n in (1, 2):
            rt.transaction(
                loads=[],
                stores=[_doc(1, "a", f"v{n}", n), _doc(1, "a", f"w{n}", n)],
                checkpoint=checkpoint(n),
                acknowledged_pending=False,
            )
            rt.expect_acknowledged()
        assert rt.close() == 0
    assert sorted(r[2] for r in _table(target)) == ["v1", "v2", "w1", "w2"]
    target.drop()
    soft = Target(target.kind, tmp_path / "soft")
    (tmp_path / "soft").mkdir()
    try:
        with Standin.spawn() as rt:
            rt.open(_spec(soft, tmp_path / "soft"))
            rt.acknowledge()
            rt.transaction(
                loads=[],
                stores=[_doc(1, "a", "one", 1), _doc(1, "a", None, None, delete=True)],
                checkpoint=checkpoint(1),
            )
            rt.expect_acknowledged()
            assert rt.close() == 0
        rows = _table(soft)
        assert len(rows) == 1 and json.loads(rows[0][4])["_meta"]["op"] == "d"
    finally:
        soft.drop()


def test_spec_validate_apply_through_the_connector(target: Target, tmp_path: Path) -> None:
    spec = _spec(target, tmp_path)
    with Standin.spawn() as rt:
        rt.open(spec)
        rt.acknowledge()
        rt.transaction(loads=[], stores=[_doc(1, "a", "one", 1)], checkpoint=checkpoint(1))
        rt.expect_acknowledged()
        assert rt.close() == 0
    with Standin.spawn() as rt:
        rt.send({"spec": {"connectorType": "IMAGE", "config": {}}})
        assert rt.expect("spec")["protocol"] == 3032023
    bindings = [
        {
            "resourceConfig": b["resourceConfig"],
            "collection": {
                **b["collection"],
                "projections": [
                    {**p, "inference": {"types": ["string"]}} if p["field"] == "n" else p
                    for p in b["collection"]["projections"]
                ],
            },
        }
        for b in spec["bindings"]
    ]
    with Standin.spawn() as rt:
        rt.send({"validate": {"name": "acmeCo/m", "config": spec["config"], "bindings": bindings}})
        validated = rt.expect("validated")["bindings"][0]
    assert validated["resourcePath"] == ["things"]
    n = validated["constraints"]["n"]
    assert n["type"] == "INCOMPATIBLE" and "things" in n["reason"] and "BIGINT" in n["reason"]
    assert validated["constraints"]["v"]["type"] == "LOCATION_RECOMMENDED"
    published = validated["constraints"]["flow_published_at"]
    assert published["type"] == "FIELD_FORBIDDEN" and "itself" in published["reason"]
    with Standin.spawn() as rt:
        rt.send({"apply": {"materialization": spec, "version": "v1"}})
        described = rt.expect("applied")["actionDescription"]
    assert "things" in described and "k/name" in described
