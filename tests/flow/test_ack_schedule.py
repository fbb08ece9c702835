"""The sync schedule delays Acknowledged as Estuary's SQL connectors do (pure, time passed in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from afterload.flow.ack_schedule import AckSchedule
from afterload.ndjson.sync_schedule import SyncPolicy, SyncSchedule

T0 = datetime(2026, 1, 1, 12, 0, 7, tzinfo=UTC)


def _schedule(freq: str) -> AckSchedule:
    return AckSchedule(SyncPolicy(SyncSchedule.model_validate({"syncFrequency": freq}), "acmeCo/m"))


def test_recovery_and_first_ack_are_never_delayed_then_ticks_space_them() -> None:
    acks = _schedule("5m")
    assert acks.acknowledge_at(0, recovery=True, now=T0) is None
    assert acks.acknowledge_at(10, recovery=False, now=T0) is None  # nothing acknowledged yet
    acks.sent(T0)
    due = acks.acknowledge_at(10, recovery=False, now=T0 + timedelta(seconds=1))
    assert due is not None and T0 < due <= T0 + timedelta(minutes=5)
    acks.sent(due)
    assert acks.acknowledge_at(10, recovery=False, now=due + timedelta(minutes=6)) is None


def test_a_backfill_in_the_last_five_stored_transactions_is_not_delayed() -> None:
    acks = _schedule("30m")
    acks.sent(T0)
    assert acks.acknowledge_at(1_000_000, recovery=False, now=T0) is None
    for _ in range(4):
        assert acks.acknowledge_at(5, recovery=False, now=T0) is None
        assert acks.acknowledge_at(0, recovery=False, now=T0) is None  # empty: not history
    assert acks.acknowledge_at(5, recovery=False, now=T0) is not None  # the backfill aged out


def test_zero_frequency_never_delays() -> None:
    acks = _schedule("0s")
    acks.sent(T0)
    assert acks.acknowledge_at(5, recovery=False, now=T0) is None
