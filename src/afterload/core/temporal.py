"""Dates and times a column holds exactly: RFC 3339, the grammar of JSON Schema's ``date-time``
and ``date`` formats, in the one spelling every reader takes alike.

Python's ``fromisoformat`` reads far more than RFC 3339 (week dates, the basic format, times
without an offset, a lower-case ``t``, any number of fraction digits, of which it keeps six),
and DuckDB and PostgreSQL each read yet another set: a form that one reader took and the next
did not became NULL in DuckDB, and digits past the microsecond were cut. So a value is taken
only in the form all of them read as the same instant; any other is a bad line that names the
value (``flow_document`` keeps every value as written either way).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:(?P<second>\d{2})(?:\.(?P<fraction>\d+))?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)",
    re.ASCII,
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def date_time_problem(value: str) -> str | None:
    """Why ``value`` is not an RFC 3339 date-time that a TIMESTAMPTZ column holds exactly
    (upper-case ``T`` and ``Z``, at most six fraction digits that are not zeros), or None."""
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        return (
            f"{value!r} is not an RFC 3339 date-time "
            "(such as 2026-12-03T10:15:00Z or 2026-12-03T11:15:00.5+01:00)"
        )
    if (match["fraction"] or "")[6:].strip("0"):
        return (
            f"{value!r} has digits past the microsecond, which a TIMESTAMPTZ cannot hold "
            "(without format: date-time in the schema it is kept as text, every digit)"
        )
    if match["second"] == "60":
        return f"{value!r} is a leap second, which a TIMESTAMPTZ cannot hold"
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return f"{value!r} is not a date-time that exists"
    return None


def date_problem(value: str) -> str | None:
    """Why ``value`` is not an RFC 3339 full date (``YYYY-MM-DD``) that exists, or None."""
    if _DATE.fullmatch(value) is None:
        return f"{value!r} is not an RFC 3339 date (such as 2026-12-03)"
    try:
        date.fromisoformat(value)
    except ValueError:
        return f"{value!r} is not a date that exists"
    return None


def far_offset_problem(value: str) -> str | None:
    """Why an RFC 3339 date-time cannot reach a destination that reads offsets up to 15:59
    only (PostgreSQL), or None. Such a value is sent as its UTC instant, and one outside the
    years 0001 to 9999 in UTC has no such spelling: it would stop the commit."""
    if value[-6] not in "+-" or value[-5:-3] < "16":
        return None
    try:
        datetime.fromisoformat(value).astimezone(UTC)
    except OverflowError:
        return (
            f"{value!r} is outside the years 0001 to 9999 in UTC, with an offset of 16 hours "
            "or more, which PostgreSQL cannot read"
        )
    return None
