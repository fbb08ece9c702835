"""The session enforces the protocol's order; Loads are never evaluated before the previous
commit is durable and acknowledged; Acknowledged goes out once per commit."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from afterload.flow import machine as m
from afterload.flow import request as rq
from afterload.flow.catalog import CollectionSpec, MaterializationBinding, MaterializationSpec
from afterload.flow.errors import ProtocolError


def open_request(delta: tuple[bool, ...] = (False, True)) -> rq.Open:
    bindings = [
        MaterializationBinding(collection=CollectionSpec(name=f"c{i}"), delta_updates=d)
        for i, d in enumerate(delta)
    ]
    return rq.Open(materialization=MaterializationSpec(name="m", bindings=bindings))


CHECKPOINT = {"sources": {"j": {"readThrough": "1"}}}

# A legal session is: Open, Ack, then per transaction (Load*, Flush, Store*, StartCommit, Ack),
# with the destination's commit reported durable at some point after each StartCommit.
transactions = st.lists(
    st.tuples(
        st.integers(0, 3),  # loads (binding 0, standard)
        st.lists(st.integers(0, 1), max_size=4),  # stores, by binding
        st.sampled_from(["before_ack", "after_ack", "after_loads"]),  # when durable
    ),
    max_size=5,
)


def play(txns: list[tuple[int, list[int], str]]) -> list[Any]:
    """Feed a legal session; return the events (requests sent and actions taken)."""
    s = m.Session()
    log: list[Any] = []

    def feed(request: rq.Request) -> None:
        log.append(request)
        log.extend(s.receive(request))

    def durable() -> None:
        log.append("durable")
        log.extend(s.commit_durable())

    feed(open_request())
    feed(rq.Acknowledge())
    for loads, stores, when in txns:
        for _ in range(loads):
            feed(rq.Load(binding=0))
        feed(rq.Flush())
        for b in stores:
            feed(rq.Store(binding=b))
        feed(rq.StartCommit(runtime_checkpoint=CHECKPOINT))
        if when == "before_ack":
            durable()
        feed(rq.Acknowledge())
        if when == "after_ack":
            durable()
        elif when == "after_loads":
            # The next transaction's Loads arrive before the commit is durable.
            feed(rq.Load(binding=0))
            durable()
    return log


@given(transactions)
def test_legal_sessions_pass_and_loads_wait_for_durable_acknowledged(
    txns: list[tuple[int, list[int], str]],
) -> None:
    log = play(txns)
    acks = [e for e in log if isinstance(e, m.SendAcknowledged)]
    assert len(acks) == len(txns) + 1  # the recovery commit, then one per commit
    assert acks[0].recovery and acks[0].stores == 0
    assert [a.stores for a in acks[1:]] == [len(stores) for _, stores, _ in txns]
    # Between a StartCommit and the next EvaluateLoads there is always a durable report
    # and an Acknowledged, in that order.
    pending = False
    for event in log:
        if isinstance(event, m.StartCommitAction):
            pending = True
        elif event == "durable":
            assert pending
        elif isinstance(event, m.SendAcknowledged):
            pending = False
        elif isinstance(event, m.EvaluateLoads):
            assert not pending
    stages = [e for e in log if isinstance(e, m.StageLoad)]
    assert len(stages) == sum(1 for e in log if isinstance(e, rq.Load))


@given(transactions, st.data())
def test_any_request_out_of_place_is_a_violation_naming_message_and_state(
    txns: list[tuple[int, list[int], str]], data: st.DataObject
) -> None:
    log = play(txns)
    requests = [
        e
        for e in log
        if isinstance(
            e, rq.Spec | rq.Open | rq.Acknowledge | rq.Load | rq.Flush | rq.Store | rq.StartCommit
        )
    ]
    cut = data.draw(st.integers(0, len(requests)))
    intruder: Any = data.draw(
        st.sampled_from(
            [
                rq.Open(materialization=MaterializationSpec(name="m")),
                rq.Spec(),
                rq.Acknowledge(),
                rq.Load(binding=0),
                rq.Flush(),
                rq.Store(binding=0),
                rq.StartCommit(runtime_checkpoint=CHECKPOINT),
            ]
        )
    )
    s = m.Session()
    durable_after = {i for i, e in enumerate(requests) if isinstance(e, rq.StartCommit)}
    for i, r in enumerate(requests[:cut]):
        s.receive(r)
        if i in durable_after:
            s.commit_durable()
    if _legal(s, intruder):
        s.receive(intruder)
        return
    with pytest.raises(ProtocolError) as info:
        s.receive(intruder)
    text = str(info.value)
    assert type(intruder).__name__ in text and s.phase.value in text


def _legal(s: m.Session, r: rq.Request) -> bool:
    """The protocol's grammar, written independently of the machine."""
    phase = s.phase
    if isinstance(r, rq.Spec | rq.Validate | rq.Apply | rq.Open):
        return phase is m.Phase.IDLE
    if isinstance(r, rq.Acknowledge):
        return phase is m.Phase.AWAIT_ACKNOWLEDGE
    if isinstance(r, rq.Load):
        return phase is m.Phase.LOADING
    if isinstance(r, rq.Flush):
        return phase is m.Phase.LOADING and not s.awaiting_durability
    if isinstance(r, rq.Store | rq.StartCommit):
        return phase is m.Phase.STORING
    return False


def test_flush_before_the_commit_is_durable_is_refused() -> None:
    s = m.Session()
    s.receive(open_request())
    s.receive(rq.Acknowledge())
    s.receive(rq.Flush())
    s.receive(rq.StartCommit(runtime_checkpoint=CHECKPOINT))
    assert s.receive(rq.Acknowledge()) == []  # not durable yet: no Acknowledged
    s.receive(rq.Load(binding=0))
    with pytest.raises(ProtocolError, match="Flush while loading"):
        s.receive(rq.Flush())


def test_acknowledged_waits_for_both_the_runtime_and_the_destination() -> None:
    s = m.Session()
    s.receive(open_request())
    assert s.receive(rq.Acknowledge()) == [m.SendAcknowledged(stores=0, recovery=True)]
    s.receive(rq.Flush())
    s.receive(rq.Store(binding=0))
    s.receive(rq.StartCommit(runtime_checkpoint=CHECKPOINT))
    assert s.commit_durable() == []  # durable, but the runtime has not acknowledged
    assert s.receive(rq.Acknowledge()) == [m.SendAcknowledged(stores=1, recovery=False)]
    with pytest.raises(ProtocolError, match="no commit in flight"):
        s.commit_durable()


@pytest.mark.parametrize(
    ("request_", "match"),
    [
        (rq.Load(binding=1), "delta-updates and never loads"),
        (rq.Load(binding=7), "binding 7 does not exist"),
    ],
)
def test_binding_checks(request_: rq.Request, match: str) -> None:
    s = m.Session()
    s.receive(open_request())
    s.receive(rq.Acknowledge())
    with pytest.raises(ProtocolError, match=match):
        s.receive(request_)


def test_stream_end() -> None:
    s = m.Session()
    s.receive(open_request())
    s.receive(rq.Acknowledge())
    s.receive(rq.Load(binding=0))
    with pytest.raises(ProtocolError, match="ended while loading"):
        s.end()
    idle = m.Session()
    idle.receive(rq.Spec())
    idle.end()
    with pytest.raises(ProtocolError, match="closed"):
        idle.receive(rq.Spec())
