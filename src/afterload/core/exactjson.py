"""JSON numbers read exactly: orjson for speed, the standard library where orjson would round.

orjson reads an integer past the 64-bit range as a float without a word, so
``123456789012345678901234567890`` and ``…891`` would become one number — and, as keys, one
row. Such integers are at least 19 digits long, so a line holding no run of 19 digits is read
by orjson alone; any other line is validated by orjson (which refuses what JSON refuses: NaN,
Infinity, invalid UTF-8) and then read again by the standard library, whose integers are exact.

A number a DOUBLE cannot hold is refused, not rounded to a limit: past ±1.8e308 (orjson refuses
it too) or, written non-zero, so small that it would read as 0 (orjson reads ``1e-400`` as
``0.0`` without a word). Such a number has an exponent of three digits or a fraction starting
with hundreds of zeros (a 19-digit run), so only lines holding one are read again.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_LONG_DIGITS = re.compile(rb"\d{19}").search
_TINY = re.compile(rb"[:,\[]\s*-?\d+(?:\.\d+)?[eE]-\d{3}|\.0{200}").search
"""Where a non-zero number may read as 0: a number (after ``:``, ``,`` or ``[``, so that text
such as a UUID's ``…e-4562`` is not one) with a 3-digit negative exponent, or 200 zeros after
the point (with an exponent of two digits, it takes over 220 to fall below the smallest
double)."""

MAX_DIGITS = 4300
"""Python's own limit on integer text (``sys.get_int_max_str_digits``); longer is refused."""


class NumberRefused(ValueError):
    """A number afterload refuses rather than store changed; the message is the reason."""


class NumberTooLong(NumberRefused):
    """An integer of more than :data:`MAX_DIGITS` digits: refused rather than rounded."""


class NumberOutOfRange(NumberRefused):
    """A number past a DOUBLE's range, or non-zero and below its smallest: refused."""


def may_round(raw: bytes) -> bool:
    """Whether orjson alone could read a number in ``raw`` inexactly (a 19-digit run)."""
    return _LONG_DIGITS(raw) is not None


def may_vanish(raw: bytes) -> bool:
    """Whether ``raw`` may hold a non-zero number that orjson reads as 0 (cheap tests first:
    the fast loops call it for every line)."""
    return (b"e-" in raw or b"E-" in raw or b".0000000000" in raw) and _TINY(raw) is not None


def loads(raw: bytes) -> Any:
    """Parse ``raw`` with every integer exact; orjson.JSONDecodeError for invalid JSON."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson reads an integer of more than ~308 digits as an infinite double and refuses it.
        # The standard library then says which number it is, or why the line is no JSON.
        if "infinity" in str(exc):
            return exact(raw)
        raise
    if _LONG_DIGITS(raw) is None and not may_vanish(raw):
        return value
    return exact(raw)


def _show(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:12]}…{text[-12:]} ({len(text)} characters)"


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise NumberOutOfRange(f"{_show(text)} is too large for a DOUBLE")
    if value == 0.0 and any(c in "123456789" for c in text.partition("e")[0].partition("E")[0]):
        raise NumberOutOfRange(f"{_show(text)} is too small for a DOUBLE (it would be stored as 0)")
    return value


def _constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def exact(raw: bytes) -> Any:
    """The standard library's reading, held to orjson's rules (no NaN, no infinite number)."""
    try:
        return json.loads(raw, parse_float=_finite, parse_constant=_constant)
    except RecursionError:
        raise orjson.JSONDecodeError(
            "nests too deeply to be read exactly", raw.decode(errors="replace"), 0
        ) from None
    except NumberRefused:
        raise
    except ValueError as exc:
        if "digits" in str(exc) and "integer" in str(exc):
            raise NumberTooLong(
                f"holds an integer of more than {MAX_DIGITS} digits, which afterload refuses"
            ) from None
        reason = str(exc).split(":")[0]
        raise orjson.JSONDecodeError(reason, raw.decode(errors="replace"), 0) from None


def dumps(value: Any) -> str:
    """JSON text of a parsed value; integers past 64 bits keep every digit."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
