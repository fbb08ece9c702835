"""Date-times and dates are taken only as RFC 3339 in the spelling every reader reads alike.

The oracle is DuckDB itself (a real in-memory database): whatever the check accepts, DuckDB's
own reading (the one the table gets) is the instant Python reads; forms Python's
``fromisoformat`` takes but RFC 3339 does not (DuckDB made several of them NULL) are refused.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from afterload.core.temporal import date_problem, date_time_problem, far_offset_problem

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def duckdb_reads(con: duckdb.DuckDBPyConnection, value: str, kind: str) -> object:
    line = f'{{"v": "{value}"}}'
    return con.execute(
        f'SELECT epoch_us((json_transform(?::JSON, \'{{"v": "{kind}"}}\')).v)'
        if kind == "TIMESTAMPTZ"
        else f'SELECT (json_transform(?::JSON, \'{{"v": "{kind}"}}\')).v',
        [line],
    ).fetchone()[0]  # type: ignore[index]


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2026-01-01", "is not an RFC 3339 date-time"),
        ("2026-01-01T00:00", "is not an RFC 3339 date-time"),
        ("2026-01-01T00:00:00", "is not an RFC 3339 date-time"),  # no offset: which instant?
        ("20260101T000000Z", "is not an RFC 3339 date-time"),
        ("2026-W01-1", "is not an RFC 3339 date-time"),
        ("2026-01-01 00:00:00Z", "is not an RFC 3339 date-time"),
        ("2026-01-01t00:00:00Z", "is not an RFC 3339 date-time"),
        ("2026-01-01T00:00:00z", "is not an RFC 3339 date-time"),
        ("2026-01-01T00:00:00+0530", "is not an RFC 3339 date-time"),
        ("2026-01-01T00:00:00+05:30:15", "is not an RFC 3339 date-time"),
        ("2026-01-01T12Z", "is not an RFC 3339 date-time"),
        ("2026-01-01T00:00:00,5Z", "is not an RFC 3339 date-time"),
        ("2026-01-01T00:00:00.Z", "is not an RFC 3339 date-time"),
        (" 2026-01-01T00:00:00Z", "is not an RFC 3339 date-time"),
        ("2026-01-01T00:00:00Z\n", "is not an RFC 3339 date-time"),
        ("２０２６-01-01T00:00:00Z", "is not an RFC 3339 date-time"),  # full-width digits
        ("2026-01-01T00:00:00.123456789Z", "has digits past the microsecond"),
        ("2026-01-01T00:00:00.1234565Z", "has digits past the microsecond"),
        ("2026-12-31T23:59:60Z", "is a leap second"),
        ("2026-02-30T00:00:00Z", "is not a date-time that exists"),
        ("2026-01-01T24:00:00Z", "is not a date-time that exists"),
        ("0000-01-01T00:00:00Z", "is not a date-time that exists"),
        ("2026-01-01T00:00:00+24:00", "is not an RFC 3339 date-time"),
        ("2026-12-03T10:15:00+12:60", "is not an RFC 3339 date-time"),  # was read as +13:00
    ],
)
def test_forms_outside_rfc_3339_or_past_microseconds_are_refused(value: str, reason: str) -> None:
    problem = date_time_problem(value)
    assert problem is not None and problem.startswith(f"{value!r} {reason}"), problem


@pytest.mark.parametrize(
    "value",
    ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.123456000Z", "2026-01-01T00:00:00.5-00:00"],
)
def test_rfc_3339_forms_are_taken(value: str, con: duckdb.DuckDBPyConnection) -> None:
    assert date_time_problem(value) is None
    assert duckdb_reads(con, value, "TIMESTAMPTZ") is not None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("20260101", "is not an RFC 3339 date"),
        ("2026-W01-1", "is not an RFC 3339 date"),
        ("2026-001", "is not an RFC 3339 date"),
        ("2026-01-01T00:00:00Z", "is not an RFC 3339 date"),
        ("2026-02-29", "is not a date that exists"),
        ("0000-01-01", "is not a date that exists"),
    ],
)
def test_dates_outside_rfc_3339_are_refused(value: str, reason: str) -> None:
    problem = date_problem(value)
    assert problem is not None and problem.startswith(f"{value!r} {reason}"), problem


offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1)
instants = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)


def rfc3339(moment: datetime, offset_minutes: int, digits: int, zulu: bool) -> str:
    """``moment`` written in ``offset_minutes``' local time, with ``digits`` fraction digits
    (six significant, then zeros)."""
    local = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    text = local.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0")
    if digits:
        text += "." + (f"{local.microsecond:06d}" + "0" * 9)[:digits]
    if zulu and offset_minutes == 0:
        return text + "Z"
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


@settings(max_examples=300, deadline=None)
@given(instants, offsets, st.integers(0, 12), st.booleans())
def test_what_is_taken_duckdb_reads_as_the_same_instant(
    con: duckdb.DuckDBPyConnection, moment: datetime, offset: int, digits: int, zulu: bool
) -> None:
    value = rfc3339(moment, offset, digits, zulu)
    unit = 10 ** (6 - min(digits, 6))  # fewer digits: the value written is the moment cut
    kept = moment.replace(microsecond=moment.microsecond // unit * unit)
    assert date_time_problem(value) is None, value
    expected = (kept - EPOCH) // timedelta(microseconds=1)
    assert duckdb_reads(con, value, "TIMESTAMPTZ") == expected, value


@settings(max_examples=200, deadline=None)
@given(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))
def test_a_date_taken_is_the_date_duckdb_reads(con: duckdb.DuckDBPyConnection, day: date) -> None:
    value = day.isoformat()
    assert date_problem(value) is None
    assert duckdb_reads(con, value, "DATE") == day


@pytest.mark.parametrize(
    ("value", "far"),
    [
        ("0001-01-01T10:00:00+16:00", True),
        ("9999-12-31T23:59:59-23:59", True),
        ("0001-01-01T10:00:00+15:59", False),  # PostgreSQL reads the offset itself
        ("2026-12-03T10:15:00+23:59", False),  # sent as its UTC instant
        ("0001-01-01T00:00:00Z", False),
    ],
)
def test_only_far_offsets_outside_the_utc_years_are_a_problem(value: str, far: bool) -> None:
    assert (far_offset_problem(value) is not None) is far
