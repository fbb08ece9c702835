"""When the next transaction may commit: Estuary Flow's materialization sync schedule.

Pure functions of the times passed in (no clock, no sleeping), so the runtime decides *when*
and tests can check every rule exactly. Once the sources are caught up, commits land on
epoch-aligned ticks of the sync frequency, shifted by a jitter that is stable for a
materialization name: many materializations do not all commit on the same second, and one
materialization keeps its cadence across restarts. An optional fast-sync window (local time,
chosen weekdays) limits the configured frequency to business hours; outside it the frequency
is 4h, but a window opening is never waited past.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from afterload.durations import parse_duration
from afterload.fields import Strict

__all__ = ["SyncPolicy", "SyncSchedule", "parse_days"]

SLOW_PERIOD = timedelta(hours=4)
"""The frequency outside the fast-sync window (Flow's fixed value)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# One letter is unambiguous only for these (R and U as in the common MTWRFSU convention).
_ONE_LETTER = {"m": 0, "w": 2, "r": 3, "f": 4, "u": 6}
_AMBIGUOUS = {"t": "Tu or Th", "s": "Sa or Su"}
_RANGE = re.compile(r"\s*[-–]\s*")
_SEPARATORS = re.compile(r"[,;\s]+")


def _day(token: str, text: str) -> int:
    word = token.lower().rstrip(".")
    if word in _ONE_LETTER:
        return _ONE_LETTER[word]
    if word in _AMBIGUOUS:
        raise ValueError(
            f"{token!r} in fastSyncEnabledDays {text!r} is ambiguous; write {_AMBIGUOUS[word]}"
        )
    if len(word) >= 2:
        for index, name in enumerate(_DAY_NAMES):
            if name.startswith(word):
                return index
    raise ValueError(
        f"{token!r} in fastSyncEnabledDays {text!r} is not a day of the week "
        "(e.g. M-F, Mo-Fr, Mon, Wed, Fri, sa,su)"
    )


def parse_days(text: str) -> frozenset[int]:
    """Parse a weekday list such as ``M-F``, ``Mo, We, Fr`` or ``Mon-Wed, Sat`` (Monday=0).

    Tolerant on purpose, because people write day lists many ways: case-insensitive, days as
    one, two or three letters or full names (any prefix of two letters or more), ranges with
    ``-`` that may wrap past Sunday (``Fr-Mo``), separated by commas and/or spaces. Raises
    ``ValueError`` naming the part that is not understood.
    """
    days: set[int] = set()
    for part in _SEPARATORS.split(_RANGE.sub("-", text.strip())):
        if not part:
            continue
        ends = part.split("-")
        if len(ends) == 1:
            days.add(_day(part, text))
            continue
        if len(ends) != 2 or not all(ends):
            raise ValueError(f"{part!r} in fastSyncEnabledDays {text!r} is not a range of days")
        first, last = _day(ends[0], text), _day(ends[1], text)
        days.update((first + i) % 7 for i in range((last - first) % 7 + 1))
    if not days:
        raise ValueError(f"fastSyncEnabledDays {text!r} names no days")
    return frozenset(days)


SyncFrequency = Literal["0s", "30s", "5m", "15m", "30m", "1h", "2h", "4h"]
_HH_MM = r"^([01]\d|2[0-3]):[0-5]\d$"


class SyncSchedule(Strict):
    """The ``syncSchedule`` block: Estuary's keys (camelCase), snake_case in Python."""

    sync_frequency: SyncFrequency = Field(
        default="0s",
        alias="syncFrequency",
        description="Once caught up, commit no more often than this. 0s commits as soon as "
        "data arrives.",
    )
    timezone: str | None = Field(default=None, description="IANA zone of the fast-sync window.")
    fast_sync_start_time: str | None = Field(
        default=None, alias="fastSyncStartTime", pattern=_HH_MM, description="HH:MM"
    )
    fast_sync_stop_time: str | None = Field(
        default=None, alias="fastSyncStopTime", pattern=_HH_MM, description="HH:MM"
    )
    fast_sync_enabled_days: str | None = Field(
        default=None,
        alias="fastSyncEnabledDays",
        description="Days of the fast-sync window, e.g. 'M-F' or 'Mo, We, Fr'.",
    )

    @field_validator("fast_sync_enabled_days")
    @classmethod
    def _days(cls, value: str | None) -> str | None:
        if value is not None:
            parse_days(value)
        return value

    @model_validator(mode="after")
    def _window_complete(self) -> SyncSchedule:
        window = [self.timezone, self.fast_sync_start_time, self.fast_sync_stop_time]
        if any(v is not None for v in window) and not all(v is not None for v in window):
            raise ValueError("timezone, fastSyncStartTime and fastSyncStopTime go together")
        if self.timezone is not None:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{self.timezone!r} is not an IANA time zone") from None
        return self


def _utc(when: datetime, name: str) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {when!r}")
    return when.astimezone(UTC)


def _hh_mm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


class _Window:
    """The fast-sync window: [start, stop) local time, belonging to the day it opens on."""

    def __init__(self, zone: ZoneInfo, start: time, stop: time, days: frozenset[int]) -> None:
        self.zone = zone
        self.start = start
        self.stop = stop
        self.days = days

    def _bounds(self, day: date) -> tuple[datetime, datetime]:
        # A stop not after the start wraps past midnight (equal times: a full 24h window).
        # Local times in a DST gap resolve with the offset before the change (fold=0).
        close_day = day if self.stop > self.start else day + timedelta(days=1)
        opens = datetime.combine(day, self.start, tzinfo=self.zone)
        closes = datetime.combine(close_day, self.stop, tzinfo=self.zone)
        return opens.astimezone(UTC), closes.astimezone(UTC)

    def contains(self, when: datetime) -> bool:
        today = when.astimezone(self.zone).date()
        for day in (today - timedelta(days=1), today):
            if day.weekday() in self.days:
                opens, closes = self._bounds(day)
                if opens <= when < closes:
                    return True
        return False

    def next_opening(self, after: datetime) -> datetime:
        today = after.astimezone(self.zone).date()
        for offset in range(-1, 9):
            day = today + timedelta(days=offset)
            if day.weekday() in self.days:
                opens, _ = self._bounds(day)
                if opens > after:
                    return opens
        raise AssertionError("a non-empty set of weekdays always has an opening within 8 days")


class SyncPolicy:
    """Decides the earliest time the next transaction may commit, for one materialization."""

    def __init__(self, schedule: SyncSchedule, seed: str) -> None:
        """``seed`` is the materialization name: it fixes the jitter, hence the cadence."""
        self._frequency = parse_duration(schedule.sync_frequency)
        digest = hashlib.blake2b(seed.encode(), digest_size=8).digest()
        self._hash = int.from_bytes(digest, "big")
        self._window: _Window | None = None
        start, stop = schedule.fast_sync_start_time, schedule.fast_sync_stop_time
        if schedule.timezone is not None and start is not None and stop is not None:
            days = (
                frozenset(range(7))
                if schedule.fast_sync_enabled_days is None
                else parse_days(schedule.fast_sync_enabled_days)
            )
            zone = ZoneInfo(schedule.timezone)
            self._window = _Window(zone, _hh_mm(start), _hh_mm(stop), days)

    def period_at(self, when: datetime) -> timedelta:
        """The sync frequency in effect at ``when``: the configured one, or 4h outside the window.

        ``0s`` means no delay at any time, so it is returned everywhere.
        """
        when = _utc(when, "when")
        if not self._frequency or self._window is None or self._window.contains(when):
            return self._frequency
        return SLOW_PERIOD

    def next_commit_at(
        self, last_commit_at: datetime | None, *, previous_was_full: bool
    ) -> datetime | None:
        """The earliest UTC time the next commit may happen, or None for "as soon as ready".

        None for the first commit after start (``last_commit_at`` None), during a backfill
        (``previous_was_full``: the last transaction stopped at its size limit, so the
        sources are behind and waiting would only slow the catch-up), and for ``0s``.
        Otherwise the first schedule tick strictly after the last commit; outside the fast
        window that is the 4h tick or the window's next opening, whichever comes first.
        """
        if last_commit_at is None:
            return None
        last = _utc(last_commit_at, "last_commit_at")
        if previous_was_full or not self._frequency:
            return None
        if self._window is None or self._window.contains(last):
            return self._next_tick(last, self._frequency)
        return min(self._next_tick(last, SLOW_PERIOD), self._window.next_opening(last))

    def _next_tick(self, after: datetime, period: timedelta) -> datetime:
        """The first instant strictly after ``after`` that is ``jitter + k * period`` from epoch."""
        period_us = period // _MICROSECOND
        jitter_us = (self._hash % int(period.total_seconds())) * 1_000_000
        elapsed_us = (after - _EPOCH) // _MICROSECOND
        ticks = (elapsed_us - jitter_us) // period_us + 1
        return _EPOCH + timedelta(microseconds=ticks * period_us + jitter_us)
