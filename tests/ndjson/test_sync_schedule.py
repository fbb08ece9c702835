"""The sync schedule: when the next transaction may commit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from afterload.ndjson.sync_schedule import SyncPolicy, SyncSchedule, parse_days

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SEED = "acme/prod/duckdb"
FOUR_HOURS = timedelta(hours=4)
PERIODS = {
    "30s": timedelta(seconds=30),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "2h": timedelta(hours=2),
    "4h": FOUR_HOURS,
}


def policy(frequency: str = "30m", seed: str = SEED, **window: Any) -> SyncPolicy:
    return SyncPolicy(SyncSchedule.model_validate({"syncFrequency": frequency, **window}), seed)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def after(p: SyncPolicy, last: datetime) -> datetime:
    """next_commit_at once caught up, which must be a time."""
    result = p.next_commit_at(last, previous_was_full=False)
    assert result is not None
    return result


def offset(p: SyncPolicy, period: timedelta) -> timedelta:
    """Where the ticks sit within each period (the jitter), read off the policy."""
    return (after(p, EPOCH) - EPOCH) % period


# --- no delay --------------------------------------------------------------------------------


def test_first_commit_is_never_delayed() -> None:
    assert policy("4h").next_commit_at(None, previous_was_full=False) is None


def test_backfill_is_never_delayed() -> None:
    last = utc(2026, 3, 4, 10, 0)
    assert policy("4h").next_commit_at(last, previous_was_full=True) is None
    assert after(policy("4h"), last) > last


def test_zero_seconds_never_delays() -> None:
    p = policy("0s", timezone="UTC", fastSyncStartTime="09:00", fastSyncStopTime="17:00")
    assert p.next_commit_at(utc(2026, 3, 4, 3, 0), previous_was_full=False) is None
    assert p.next_commit_at(utc(2026, 3, 4, 10, 0), previous_was_full=False) is None
    assert p.period_at(utc(2026, 3, 4, 3, 0)) == timedelta(0)


# --- ticks and jitter ------------------------------------------------------------------------


def test_ticks_are_epoch_aligned_with_the_seed_jitter() -> None:
    # Pinned values: the jitter comes from blake2b of the seed, so it is the same in every
    # process (Python's hash() would change with PYTHONHASHSEED).
    assert after(policy("4h"), EPOCH) == utc(1970, 1, 1, 2, 49, 36)
    assert after(policy("30m"), EPOCH) == utc(1970, 1, 1, 0, 19, 36)
    last = utc(2026, 3, 4, 10, 7, 12)
    assert after(policy("30m"), last) == utc(2026, 3, 4, 10, 19, 36)
    assert after(policy("30m"), utc(2026, 3, 4, 10, 19, 36)) == utc(2026, 3, 4, 10, 49, 36)
    assert after(policy("1h"), last) == utc(2026, 3, 4, 10, 49, 36)


def test_the_jitter_is_stable_for_a_seed() -> None:
    last = utc(2026, 5, 6, 7, 8, 9)
    assert after(policy("1h", "a/b"), last) == after(policy("1h", "a/b"), last)


def test_different_seeds_commit_at_different_times() -> None:
    jitters = {offset(policy("4h", f"acme/m{i}"), FOUR_HOURS) for i in range(5)}
    assert len(jitters) == 5


def test_a_commit_exactly_on_a_tick_waits_a_whole_period() -> None:
    tick = after(policy("15m"), utc(2026, 1, 1))
    assert after(policy("15m"), tick) == tick + timedelta(minutes=15)
    assert after(policy("15m"), tick - timedelta(microseconds=1)) == tick


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        policy().next_commit_at(datetime(2026, 1, 1), previous_was_full=False)
    with pytest.raises(ValueError, match="timezone-aware"):
        policy().period_at(datetime(2026, 1, 1))


def test_other_offsets_are_accepted_and_utc_is_returned() -> None:
    plus_two = timezone(timedelta(hours=2))
    result = after(policy("30m"), datetime(2026, 3, 4, 12, 7, 12, tzinfo=plus_two))
    assert result == utc(2026, 3, 4, 10, 19, 36)
    assert result.tzinfo is UTC


# --- the fast-sync window --------------------------------------------------------------------

BUSINESS_HOURS = {
    "timezone": "Europe/Berlin",
    "fastSyncStartTime": "09:00",
    "fastSyncStopTime": "17:00",
    "fastSyncEnabledDays": "M-F",
}


def test_the_frequency_applies_inside_the_window_only() -> None:
    p = policy("15m", **BUSINESS_HOURS)  # Berlin is UTC+1 in March 2026 (before 29 March)
    wednesday = (2026, 3, 4)
    assert p.period_at(utc(*wednesday, 7, 59)) == FOUR_HOURS
    assert p.period_at(utc(*wednesday, 8, 0)) == timedelta(minutes=15)
    assert p.period_at(utc(*wednesday, 15, 59)) == timedelta(minutes=15)
    assert p.period_at(utc(*wednesday, 16, 0)) == FOUR_HOURS
    assert p.period_at(utc(2026, 3, 7, 12, 0)) == FOUR_HOURS  # Saturday


def test_inside_the_window_commits_follow_the_frequency() -> None:
    p = policy("15m", **BUSINESS_HOURS)
    last = utc(2026, 3, 4, 10, 0)
    assert after(p, last) == after(policy("15m"), last)


def test_outside_the_window_commits_follow_4h_ticks_with_the_same_jitter() -> None:
    p = policy("15m", **BUSINESS_HOURS)
    last = utc(2026, 3, 4, 17, 0)  # 18:00 in Berlin, next opening is 14 hours away
    assert after(p, last) == after(policy("4h"), last)


def test_the_window_opening_is_never_waited_past() -> None:
    p = policy("15m", **BUSINESS_HOURS)
    opening = utc(2026, 3, 5, 8, 0)  # Thursday 09:00 in Berlin
    four_hourly = policy("4h")
    for minutes in (1, 30, 90, 200, 239):
        last = opening - timedelta(minutes=minutes)
        assert after(p, last) == min(after(four_hourly, last), opening)
    # The first commit after the opening is inside the window, so it is fast again.
    assert after(p, opening) == after(policy("15m"), opening)


def test_friday_evening_waits_for_monday_morning_in_4h_steps() -> None:
    p = policy("1h", **BUSINESS_HOURS)
    last = utc(2026, 3, 6, 16, 30)  # Friday 17:30 in Berlin
    steps = 0
    while p.period_at(last) == FOUR_HOURS:
        following = after(p, last)
        assert timedelta(0) < following - last <= FOUR_HOURS
        last, steps = following, steps + 1
    assert last == utc(2026, 3, 9, 8, 0)  # Monday 09:00 in Berlin
    assert 15 <= steps <= 17


def test_a_window_whose_stop_is_before_its_start_wraps_past_midnight() -> None:
    p = policy(
        "5m",
        timezone="UTC",
        fastSyncStartTime="22:00",
        fastSyncStopTime="02:00",
        fastSyncEnabledDays="M-F",
    )
    five = timedelta(minutes=5)
    assert p.period_at(utc(2026, 3, 4, 21, 59)) == FOUR_HOURS  # Wednesday
    assert p.period_at(utc(2026, 3, 4, 22, 0)) == five
    assert p.period_at(utc(2026, 3, 5, 1, 59)) == five
    assert p.period_at(utc(2026, 3, 5, 2, 0)) == FOUR_HOURS
    # The window belongs to the day it opens: Friday night runs into Saturday...
    assert p.period_at(utc(2026, 3, 7, 1, 0)) == five
    # ...but Sunday night is not enabled, so early Monday is slow.
    assert p.period_at(utc(2026, 3, 9, 1, 0)) == FOUR_HOURS


def test_enabled_days_default_to_every_day() -> None:
    p = policy("30m", timezone="UTC", fastSyncStartTime="09:00", fastSyncStopTime="17:00")
    for day in range(2, 9):  # 2 March 2026 is a Monday
        assert p.period_at(utc(2026, 3, day, 12, 0)) == timedelta(minutes=30)
        assert p.period_at(utc(2026, 3, day, 18, 0)) == FOUR_HOURS


def test_enabled_days_are_honoured() -> None:
    p = policy(
        "30m",
        timezone="UTC",
        fastSyncStartTime="09:00",
        fastSyncStopTime="17:00",
        fastSyncEnabledDays="Mo, We, Fr",
    )
    fast = [p.period_at(utc(2026, 3, day, 12, 0)) != FOUR_HOURS for day in range(2, 9)]
    assert fast == [True, False, True, False, True, False, False]


def test_the_window_follows_daylight_saving_time() -> None:
    p = policy(
        "15m", timezone="America/New_York", fastSyncStartTime="09:00", fastSyncStopTime="17:00"
    )
    fifteen = timedelta(minutes=15)
    # Saturday 9 March 2024 is on EST (UTC-5): 09:00 local is 14:00 UTC.
    assert p.period_at(utc(2024, 3, 9, 13, 59)) == FOUR_HOURS
    assert p.period_at(utc(2024, 3, 9, 14, 0)) == fifteen
    # Clocks go forward on Sunday 10 March: 09:00 EDT (UTC-4) is 13:00 UTC.
    assert p.period_at(utc(2024, 3, 10, 12, 59)) == FOUR_HOURS
    assert p.period_at(utc(2024, 3, 10, 13, 0)) == fifteen
    assert p.period_at(utc(2024, 3, 10, 20, 59)) == fifteen
    assert p.period_at(utc(2024, 3, 10, 21, 0)) == FOUR_HOURS
    # The wait before the opening ends at the new, earlier UTC time.
    assert after(p, utc(2024, 3, 10, 12, 59)) == utc(2024, 3, 10, 13, 0)
    # And back on 3 November.
    assert p.period_at(utc(2024, 11, 3, 13, 30)) == FOUR_HOURS
    assert p.period_at(utc(2024, 11, 3, 14, 0)) == fifteen


def test_invalid_enabled_days_are_refused_when_the_policy_is_built() -> None:
    with pytest.raises(ValueError, match="'Funday'"):
        policy(**{**BUSINESS_HOURS, "fastSyncEnabledDays": "Mon, Funday"})


# --- parse_days ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("M-F", {0, 1, 2, 3, 4}),
        ("Mo-Fr", {0, 1, 2, 3, 4}),
        ("mon - fri", {0, 1, 2, 3, 4}),
        ("Mo, We, Fr", {0, 2, 4}),
        ("Mon, Wed, Fri", {0, 2, 4}),
        ("Mon-Wed, Sat", {0, 1, 2, 5}),
        ("sa,su", {5, 6}),
        ("Saturday Sunday", {5, 6}),
        ("TUESDAY,thurs", {1, 3}),
        ("M W F", {0, 2, 4}),
        ("R, U", {3, 6}),
        ("Fr-Mo", {4, 5, 6, 0}),
        ("Su-Th", {6, 0, 1, 2, 3}),
        ("We-We", {2}),
        ("Mo–Fr", {0, 1, 2, 3, 4}),
    ],
)
def test_parse_days(text: str, days: set[int]) -> None:
    assert parse_days(text) == frozenset(days)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "names no days"),
        (" , ", "names no days"),
        ("Mon, Funday", "'Funday'.*not a day of the week"),
        ("T", "'T'.*ambiguous; write Tu or Th"),
        ("S-F", "'S'.*ambiguous; write Sa or Su"),
        ("M-", "'M-'.*not a range"),
        ("M-W-F", "'M-W-F'.*not a range"),
        ("Mx-Fr", "'Mx'"),
    ],
)
def test_parse_days_names_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_days(text)


# --- properties ------------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
hh_mm = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 30]))
windows = st.fixed_dictionaries(
    {
        "timezone": st.sampled_from(
            ["UTC", "America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Lord_Howe"]
        ),
        "fastSyncStartTime": hh_mm,
        "fastSyncStopTime": hh_mm,
        "fastSyncEnabledDays": st.sampled_from(["M-F", "sa,su", "We", "Mo, We, Fr", "Su-Th"]),
    }
)


@settings(max_examples=100, deadline=None)
@given(frequency=st.sampled_from(sorted(PERIODS)), seed=st.text(max_size=20), last=instants)
def test_constant_frequency_ticks_are_exactly_one_period_apart(
    frequency: str, seed: str, last: datetime
) -> None:
    p, period = policy(frequency, seed), PERIODS[frequency]
    first = after(p, last)
    assert timedelta(0) < first - last <= period
    assert after(p, first) - first == period
    assert (first - EPOCH) % period == offset(p, period)
    assert p.period_at(last) == period


@settings(max_examples=100, deadline=None)
@given(frequency=st.sampled_from(sorted(PERIODS)), window=windows, last=instants)
def test_windowed_commits_are_bounded(
    frequency: str, window: dict[str, str], last: datetime
) -> None:
    p, fast = policy(frequency, **window), PERIODS[frequency]
    following = after(p, last)
    assert following.tzinfo is UTC
    assert last < following <= last + FOUR_HOURS
    if p.period_at(last) == fast:
        assert following - last <= fast
    else:
        # Outside the window no opening is skipped: the window stays closed until then.
        # (Openings fall on whole minutes, so checking every whole minute is exhaustive.)
        minute = last.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while minute < following:
            assert p.period_at(minute) == FOUR_HOURS
            minute += timedelta(minutes=1)
