"""The trigger's durable state as a pure core: what is owed after any sequence of commits,
fires and crashes, checked against a plain model; and its JSON round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from pydantic import JsonValue

from afterload.triggers.base import FireOutcome
from afterload.triggers.ledger import decision
from afterload.triggers.memory import Mark, TriggerMemory, TriggerState, recover
from afterload.triggers.records import RunRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAME = "dbt_job_trigger/42"


def at(n: int) -> datetime:
    return T0 + timedelta(seconds=n)


def entry(run_id: int | None, covers: int, kind: str = "started") -> RunRecord:
    return RunRecord(
        materialization="m",
        trigger=NAME,
        job="dbt job 42",
        run_id=run_id,
        decision=kind,
        covers_transaction=covers,
        covers_committed_at=at(covers),
        created_at=at(covers + 1),
    )


# One step: ("commit", documents) | ("fire", recorded) | ("crash",)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("commit"), st.integers(0, 3)),
        st.tuples(st.just("fire"), st.booleans()),
        st.tuples(st.just("crash")),
    ),
    max_size=40,
)


@given(steps)
def test_pending_after_any_history_matches_the_model(history: list[tuple[object, ...]]) -> None:
    """Commits stamp the state into the 'checkpoint'; a fire covers what stood and reaches the
    'ledger' only if recorded; a crash restarts from checkpoint + ledger. The model: what a
    restart owes is the newest data transaction unless a run durably covers it (in the ledger,
    or in memory when a later commit stamped it)."""
    memory = TriggerMemory(NAME)
    checkpoint: JsonValue = None
    ledger: list[RunRecord] = []
    transactions = newest_data = 0
    in_memory = in_checkpoint = in_ledger = 0  # newest covered transaction, by where it is
    run = 0
    for step in history:
        if step[0] == "commit":
            documents = int(step[1])  # type: ignore[call-overload]
            transactions += 1
            checkpoint = memory.stamp(transactions, at(transactions), documents)
            in_checkpoint = in_memory
            if documents:
                memory.stood(transactions, at(transactions))
                newest_data = transactions
        elif step[0] == "fire":
            mark = memory.covering()
            run += 1
            if mark is not None:
                memory.covered(mark, run)
                in_memory = max(in_memory, mark.transaction)
                if step[1]:
                    ledger.append(entry(run, mark.transaction))
                    in_ledger = max(in_ledger, mark.transaction)
        else:
            state = recover(
                checkpoint,
                transactions=transactions,
                committed_at=at(transactions) if transactions else None,
                ledger=ledger,
            )
            memory = TriggerMemory(NAME)
            memory.load(state)
            durable = max(in_ledger, in_checkpoint)
            assert state.pending == (newest_data > durable)
            if state.pending:
                assert state.owed is not None and state.owed.transaction == newest_data
            in_memory = durable


@given(
    st.integers(0, 2**62),
    st.integers(0, 2**62),
    st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
)
def test_state_survives_its_json(data: int, covered: int, run_id: int | None) -> None:
    state = (
        TriggerState()
        .with_data(Mark(transaction=data, committed_at=at(1)))
        .with_run(Mark(transaction=covered, committed_at=at(2)), run_id)
    )
    again = TriggerState.from_json(state.to_json())
    assert again == state.settled()
    assert again is not None and again.pending == (covered < data)


@given(st.one_of(st.none(), st.integers(), st.text(), st.lists(st.integers())))
def test_a_foreign_or_missing_state_owes_the_last_commit(stored: object) -> None:
    state = recover(stored, transactions=5, committed_at=at(5), ledger=[])  # type: ignore[arg-type]
    assert state.pending and state.owed == Mark(transaction=5, committed_at=at(5))
    assert not recover(stored, transactions=0, committed_at=None, ledger=[]).pending  # type: ignore[arg-type]


def test_ledger_words() -> None:
    assert decision(FireOutcome("started", "started run 7", run_id=7)) == "started"
    assert decision(FireOutcome("started", "x", run_id=9, cancelled=(7, 8))) == "replaced 7, 8"
    assert decision(FireOutcome("skipped", "skipped, run 7 is running", active=(7,))) == (
        "skipped for run 7"
    )
    assert decision(FireOutcome("failed", "failed (dbt Cloud answered 400: bad)")) == (
        "failed: dbt Cloud answered 400: bad"
    )
    # Only runs that exist cover anything.
    assert not entry(None, 3, "failed: x").started
    assert not entry(5, 3, "skipped for run 5").started
    assert entry(5, 3, "replaced 4").started
