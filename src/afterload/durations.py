"""Go-style durations (`30m`, `1h30m`, `90s`, `0s`), parsed as the original connector does."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_LONGEST = (2**63 - 1) / 1e9
"""Go's durations are 64-bit nanoseconds: the longest is about 292 years."""
PATTERN = r"^(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)$"


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration; negative durations are refused (an interval cannot be negative)."""
    s = text.strip()
    if s == "0":
        return timedelta(0)
    if not s:
        raise ValueError("empty duration")
    pos = 0
    seconds = 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        seconds += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ValueError(f"{text!r} is not a duration (e.g. 30m, 1h, 90s)")
    if seconds > _LONGEST:
        raise ValueError(f"{text!r} is longer than a duration can be (Go's limit, about 292 years)")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Format as Go would print it, shortest form first: ``1h30m``, ``90s`` → ``1m30s``, ``0s``."""
    total = value.total_seconds()
    if total == 0:
        return "0s"
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{int(hours)}h"
    if minutes:
        out += f"{int(minutes)}m"
    if seconds:
        out += f"{seconds:g}s"
    return out
