"""JSON numbers read exactly: orjson for speed, the standard library where orjson would round.

orjson reads an integer past the 64-bit range as a float without a word, so
``123456789012345678901234567890`` and ``…891`` would become one number — and, as keys, one
row. Such integers are at least 19 digits long, so a line holding no run of 19 digits is read
by orjson alone; any other line is validated by orjson (which refuses what JSON refuses: NaN,
Infinity, invalid UTF-8) and then read again by the standard library, whose integers are exact.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_LONG_DIGITS = re.compile(rb"\d{19}").search

MAX_DIGITS = 4300
"""Python's own limit on integer text (``sys.get_int_max_str_digits``); longer is refused."""


class NumberTooLong(ValueError):
    """An integer of more than :data:`MAX_DIGITS` digits: refused rather than rounded."""


def may_round(raw: bytes) -> bool:
    """Whether orjson alone could read a number in ``raw`` inexactly (a 19-digit run)."""
    return _LONG_DIGITS(raw) is not None


def loads(raw: bytes) -> Any:
    """Parse ``raw`` with every integer exact; orjson.JSONDecodeError for invalid JSON."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson reads an integer of more than ~308 digits as an infinite double and refuses it.
        if "infinity" in str(exc) and _LONG_DIGITS(raw) is not None:
            return exact(raw)
        raise
    if _LONG_DIGITS(raw) is None:
        return value
    return exact(raw)


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number is infinity when parsed as double")
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
