"""The webhook schedule, a pure core: no start-up fire, at most one delivery per interval, a
failed window stays pending and is re-sent unchanged, and no window is delivered twice."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from afterload.triggers.webhook.schedule import PendingState, WebhookSchedule
from afterload.triggers.webhook.window import Window

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def commit(seq: int, table: str = "orders") -> Window:
    at = T0 + timedelta(seconds=seq)
    return Window.of_commit(
        seq, opened_at=at, published_min=at, published_max=at, collections=[table]
    )


def test_no_start_up_fire_and_nothing_without_data() -> None:
    s = WebhookSchedule(interval=60)
    assert s.begin(0.0) is None and s.due_at is None


def test_the_first_commit_is_delivered_at_once_then_one_per_interval() -> None:
    s = WebhookSchedule(interval=60)
    s.commit(5.0, commit(1))
    w = s.begin(5.0)
    assert w is not None and (w.first, w.last) == (1, 1)
    s.commit(6.0, commit(2, "a"))
    s.commit(7.0, commit(3, "b"))
    s.finish(8.0, delivered=True)
    assert s.due_at == 65.0 and s.begin(64.9) is None
    w = s.begin(65.0)
    assert w is not None and (w.first, w.last, w.collections) == (2, 3, ("a", "b"))
    assert w.opened_at == commit(2).opened_at  # the first commit gives the run_id


def test_unset_interval_delivers_after_each_commit_coalescing_while_in_flight() -> None:
    s = WebhookSchedule(interval=0)
    s.commit(1.0, commit(1))
    assert s.begin(1.0) is not None
    s.commit(1.1, commit(2))
    s.commit(1.2, commit(3))
    s.finish(1.5, delivered=True)
    w = s.begin(1.5)
    assert w is not None and (w.first, w.last) == (2, 3)


def test_a_failed_window_is_resent_unchanged_and_newer_data_waits_behind_it() -> None:
    s = WebhookSchedule(interval=0, retry_floor=10, retry_cap=40)
    s.commit(0.0, commit(1))
    first = s.begin(0.0)
    s.commit(1.0, commit(2))
    s.finish(2.0, delivered=False)
    assert s.due_at == 12.0  # the floor, since the interval is 0
    s.commit(3.0, commit(3))
    again = s.begin(12.0)
    assert again == first  # same commits, same run_id, same payload
    s.finish(13.0, delivered=False)
    assert s.due_at == 33.0  # backoff doubles…
    assert s.begin(33.0) == first
    s.finish(34.0, delivered=False)
    assert s.due_at == 74.0  # …up to the cap
    assert s.begin(74.0) == first
    s.finish(75.0, delivered=True)
    nxt = s.begin(75.0)
    assert nxt is not None and (nxt.first, nxt.last) == (2, 3)
    assert s.delivered_through == 1


def test_retry_after_from_the_server_is_honoured() -> None:
    s = WebhookSchedule(interval=0)
    s.commit(0.0, commit(1))
    s.begin(0.0)
    s.finish(1.0, delivered=False, retry_after=120)
    assert s.due_at == 121.0


def test_restore_makes_pending_due_at_once_and_refuses_nonsense() -> None:
    s = WebhookSchedule(interval=3600)
    state = PendingState(sealed=commit(1), open=commit(2).merge(commit(3)))
    s.restore(100.0, PendingState.model_validate_json(state.model_dump_json()))
    assert s.begin(100.0) == commit(1)
    with pytest.raises(ValueError, match="overlaps"):
        WebhookSchedule().restore(0.0, PendingState(sealed=commit(2), open=commit(2)))
    with pytest.raises(ValueError, match="not newer"):
        s.commit(101.0, commit(3))
    empty = WebhookSchedule()
    empty.restore(0.0, PendingState())
    assert empty.begin(0.0) is None


def test_finish_without_begin_is_a_bug() -> None:
    with pytest.raises(RuntimeError):
        WebhookSchedule().finish(0.0, delivered=True)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("commit"), st.floats(0, 50), st.sampled_from(["a", "b", "c"])),
        st.tuples(st.just("deliver"), st.floats(0, 50), st.sampled_from(["ok", "fail", "429"])),
        st.tuples(st.just("restart"), st.floats(0, 50), st.just("")),
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(ops=ops, interval=st.sampled_from([0.0, 5.0, 30.0]))
def test_every_commit_is_delivered_exactly_once_in_order(
    ops: list[tuple[str, float, str]], interval: float
) -> None:
    """Random commits, outcomes and restarts (the state persisted and restored, as phase 2
    will): windows delivered successfully never overlap, arrive in commit order, a retried
    window is identical to its earlier attempt, begins are at least ``interval`` apart within
    one process, and once the receiver is healthy everything committed gets delivered."""
    s = WebhookSchedule(interval=interval, retry_floor=1.0, retry_cap=8.0)
    now, seq = 0.0, 0
    delivered: list[Window] = []
    attempted: dict[int, Window] = {}
    begins: list[float] = []
    for kind, dt, arg in ops:
        now += dt
        if kind == "commit":
            seq += 1
            s.commit(now, commit(seq, arg))
        elif kind == "restart":
            state = PendingState.model_validate_json(s.state().model_dump_json())
            s = WebhookSchedule(interval=interval, retry_floor=1.0, retry_cap=8.0)
            s.restore(now, state)
            begins = []
        else:
            w = s.begin(now)
            if w is None:
                continue
            begins.append(now)
            if w.first in attempted:
                assert attempted[w.first] == w  # a retry is the same window
            attempted[w.first] = w
            if arg == "ok":
                delivered.append(w)
            s.finish(now, delivered=arg == "ok", retry_after=3.0 if arg == "429" else None)
    for a, b in itertools.pairwise(begins):
        assert b - a >= interval - 1e-9
    # The receiver recovers: everything still pending goes out.
    for _ in range(100):
        if not s.pending:
            break
        assert s.due_at is not None  # pending data always has a delivery scheduled
        now = max(now, s.due_at)
        w = s.begin(now)
        assert w is not None
        delivered.append(w)
        s.finish(now, delivered=True)
    covered = [n for w in delivered for n in range(w.first, w.last + 1)]
    assert covered == list(range(1, seq + 1))  # each commit once, in order
