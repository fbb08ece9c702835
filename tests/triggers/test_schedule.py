"""Property tests of the trigger's pure decision core, driven by a simulated clock."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from afterload.triggers.schedule import TriggerCore


@dataclass
class Fire:
    begin: float
    end: float
    started: bool
    covers: int


@dataclass
class Trace:
    fires: list[Fire] = field(default_factory=list)
    commits: list[tuple[float, int]] = field(default_factory=list)  # (time, sequence number)


def simulate(
    core: TriggerCore,
    commits: list[tuple[float, int]],
    outcomes: list[tuple[float, bool]],
    *,
    start: bool = True,
) -> Trace:
    """Event-driven run: commits at given times, each fire taking (duration, started)."""
    trace = Trace()
    pending = sorted(commits)
    outcome_iter = iter(outcomes)
    now = 0.0
    flight_end: float | None = None
    flight_started = False
    if start:
        core.start(now)
    for _ in range(10_000):
        candidates = []
        if pending:
            candidates.append(pending[0][0])
        if flight_end is not None:
            candidates.append(flight_end)
        elif core.due_at is not None:
            candidates.append(core.due_at)
        if not candidates:
            break
        now = max(now, min(candidates))
        if flight_end is not None and flight_end <= now:
            core.finish(now, started=flight_started)
            trace.fires[-1].end = now
            flight_end = None
            continue
        if pending and pending[0][0] <= now:
            t, docs = pending.pop(0)
            core.commit(t, docs)
            if docs > 0:
                trace.commits.append((t, core.commits))
            continue
        assert core.in_flight is None
        assert core.begin(now)
        duration, flight_started = next(outcome_iter, (1.0, True))
        flight_end = now + duration
        trace.fires.append(Fire(now, now + duration, flight_started, core.in_flight or 0))
    else:
        raise AssertionError("simulation did not settle")
    return trace


intervals = st.sampled_from([0.0, 1.0, 5.0, 30.0, 1800.0])
commit_lists = st.lists(
    st.tuples(st.floats(min_value=0, max_value=5000, allow_nan=False), st.integers(0, 3)),
    max_size=40,
)
outcome_lists = st.lists(
    st.tuples(st.floats(min_value=0.0, max_value=20.0, allow_nan=False), st.booleans()),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(intervals, commit_lists, outcome_lists)
def test_never_two_fires_within_interval(
    interval: float, commits: list[tuple[float, int]], outcomes: list[tuple[float, bool]]
) -> None:
    trace = simulate(TriggerCore(interval), commits, outcomes)
    begins = [f.begin for f in trace.fires]
    for x, y in itertools.pairwise(begins):
        assert y - x >= interval - 1e-9
    # one fire at a time: each begins after the previous ended
    for first, then in itertools.pairwise(trace.fires):
        assert then.begin >= first.end


@settings(max_examples=300, deadline=None)
@given(intervals, commit_lists, st.lists(st.floats(0.0, 20.0, allow_nan=False), max_size=30))
def test_every_data_commit_is_followed_by_a_fire_within_interval(
    interval: float, commits: list[tuple[float, int]], durations: list[float]
) -> None:
    """With dbt answering, a commit waits at most one interval plus the fire in flight."""
    trace = simulate(TriggerCore(interval), commits, [(d, True) for d in durations])
    longest = max(durations, default=1.0)
    longest = max(longest, 1.0)
    for t, _ in trace.commits:
        assert any(t <= f.begin <= t + interval + longest + 1e-9 for f in trace.fires)


@settings(max_examples=300, deadline=None)
@given(intervals, commit_lists, outcome_lists)
def test_freshness_under_any_skips_and_failures(
    interval: float, commits: list[tuple[float, int]], outcomes: list[tuple[float, bool]]
) -> None:
    """Skipped or failed fires leave data pending until a run created after it exists."""
    core = TriggerCore(interval)
    trace = simulate(core, commits, outcomes)  # after the listed outcomes, dbt succeeds
    assert not core.pending
    assert core.due_at is None and core.in_flight is None
    if trace.commits:
        newest, seq = max(trace.commits)
        assert any(f.started and f.begin >= newest and f.covers >= seq for f in trace.fires)
    # the start-up fire happened first, at once
    assert trace.fires and trace.fires[0].begin == 0.0


@given(intervals, st.lists(st.floats(0, 5000, allow_nan=False), max_size=20))
def test_empty_commits_never_fire(interval: float, times: list[float]) -> None:
    trace = simulate(TriggerCore(interval), [(t, 0) for t in times], [], start=False)
    assert trace.fires == []


def test_skip_retries_after_the_interval_and_floor() -> None:
    core = TriggerCore(interval=0.0, retry_floor=10.0)
    core.start(0.0)
    assert core.begin(0.0)
    core.finish(0.5, started=False)  # skipped: a run was active
    assert core.pending and core.due_at == 10.0
    core = TriggerCore(interval=60.0, retry_floor=10.0)
    core.start(0.0)
    assert core.begin(0.0)
    core.finish(2.0, started=False)
    assert core.due_at == 60.0


def test_commits_during_flight_coalesce_into_one_fire() -> None:
    core = TriggerCore(interval=0.0)
    core.commit(0.0, 5)
    assert core.begin(0.0)
    for t in (0.1, 0.2, 0.3):
        core.commit(t, 1)
        assert not core.begin(t)
    core.finish(1.0, started=True)
    assert core.due_at == 1.0 and core.begin(1.0)
    core.finish(2.0, started=True)
    assert not core.pending and core.due_at is None


def test_leading_edge_then_one_trailing_fire_per_interval() -> None:
    core = TriggerCore(interval=1800.0)
    core.start(0.0)
    assert core.begin(0.0)
    core.finish(1.0, started=True)
    core.commit(10.0, 3)
    core.commit(20.0, 3)
    assert core.due_at == 1800.0
    assert not core.begin(1799.0)
    assert core.begin(1800.0)
    core.finish(1801.0, started=True)
    assert core.due_at is None


def test_stop_cancels_what_is_scheduled() -> None:
    core = TriggerCore(interval=5.0)
    core.start(0.0)
    core.stop()
    assert core.due_at is None and not core.begin(0.0)
