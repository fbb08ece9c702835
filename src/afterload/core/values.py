"""What a column holds, value by value: the checks a table shape caches per signature.

A signature (names and Python types) says whether a value's type fits its column; these say
whether the value itself does: an integer in range, a number a DOUBLE holds exactly, a date or
a time in the one spelling every reader takes alike (:mod:`afterload.core.temporal`).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from afterload.core.temporal import date_problem, date_time_problem, far_offset_problem

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT128_MIN, INT128_MAX = -(2**127), 2**127 - 1
EXACT_DOUBLE = 2**53
"""Every integer up to this magnitude is a DOUBLE exactly; past it, only some are."""


ValueCheck = Callable[[Any], None]
"""Raises :class:`LineProblem` when a value does not fit its column."""


class LineProblem(Exception):
    """What is wrong with one line; the caller adds binding, file and line number."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


JSON_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    dict: "an object",
    list: "an array",
}


def json_name(value: Any) -> str:
    return JSON_NAMES.get(type(value), "a value")


def _temporal(value: Any, what: str, problem_of: Callable[[str], str | None]) -> None:
    if type(value) is not str:
        raise LineProblem(f"is {json_name(value)}, not a {what} string")
    problem = problem_of(value)
    if problem is not None:
        raise LineProblem(problem)


def check_timestamp(value: Any) -> None:
    _temporal(value, "date-time", date_time_problem)


def check_timestamp_near(value: Any) -> None:
    """:func:`check_timestamp` for a destination that reads offsets up to 15:59 only."""
    _temporal(value, "date-time", date_time_problem)
    problem = far_offset_problem(value)
    if problem is not None:
        raise LineProblem(problem)


def check_date(value: Any) -> None:
    _temporal(value, "date", date_problem)


def check_int64(value: Any) -> None:
    if not INT64_MIN <= value <= INT64_MAX:
        raise LineProblem(f"{value} is out of range for BIGINT")


def show_int(value: int) -> str:
    """An integer for a message: whole, or its ends and length when it is very long."""
    text = str(value)
    digits = text.lstrip("-")
    if len(digits) <= 48:
        return text
    return f"{text[: len(text) - len(digits) + 4]}…{digits[-4:]} ({len(digits)} digits)"


def check_int128(value: Any) -> None:
    if not INT128_MIN <= value <= INT128_MAX:
        raise LineProblem(
            f"{show_int(value)} is past the range of every integer column the destination has "
            "(HUGEINT holds -2^127 to 2^127-1)"
        )


def check_unbounded(value: Any) -> None:
    """PostgreSQL's NUMERIC holds any integer the reader accepts."""


def check_doubleable(value: Any) -> None:
    """:func:`check_int64` for a column that may still widen to DOUBLE: an integer that a
    DOUBLE would round leaves the cached path, so that the shape notes it (never an error)."""
    if not -EXACT_DOUBLE <= value <= EXACT_DOUBLE and not (
        INT64_MIN <= value <= INT64_MAX and float(value) == value
    ):
        raise LineProblem(f"{value} needs a look: a DOUBLE would round it")


def check_exact_double(value: Any) -> None:
    if type(value) is int and abs(value) > EXACT_DOUBLE:
        try:
            exact = float(value) == value
        except OverflowError:  # past 1.8e308: no DOUBLE at all
            exact = False
        if not exact:
            raise LineProblem(f"{show_int(value)} cannot be held exactly by its column DOUBLE")


def integral(text: Decimal, column: str) -> int:
    """A number written with a fraction or an exponent, taken by an integer column: the integer
    its exact decimal value is. The parsed double cannot tell (``0.99999999999999999999`` reads
    as ``1.0``); the text can. Past 2^53 a destination reading the text as a double would round
    it, so the digits must be written as an integer."""
    if not text.is_finite() or text != text.to_integral_value():
        raise LineProblem(f"{text} is not an integer but its column is {column}")
    if abs(text) > EXACT_DOUBLE:
        raise LineProblem(
            f"{text} is written with a fraction or exponent and is too large to be read "
            "as an exact integer; write it as an integer"
        )
    return int(text)
