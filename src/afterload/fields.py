"""Pydantic field types shared by every config block, whichever package owns the block.

A leaf module (it imports only :mod:`afterload.durations`), so each owner — a destination, a
trigger kind, the NDJSON driver — can declare its config beside its code without importing
the root config, which imports them all.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import SplitResult, urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

from afterload.durations import PATTERN as DURATION_PATTERN
from afterload.durations import format_duration, parse_duration

_DURATION_HINT = "is not a duration (e.g. 30m, 1h, 90s)"


class Strict(BaseModel):
    """Unknown keys are errors, so a typo never silently disables a feature."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _to_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError as exc:
            if "longer than" in str(exc):
                raise
            raise ValueError(f"{value!r} {_DURATION_HINT}") from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value == 0:
            return timedelta(0)  # Go's time.ParseDuration takes a bare 0, and so do we
        raise ValueError(f"{value!r} is not a duration: give it a unit, e.g. {value}s or {value}m")
    raise ValueError(f"{value!r} {_DURATION_HINT}")


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
]
"""A Go-style duration (``30m``, ``1h30m``), as the original connector's config spells them."""


def _to_id(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a positive integer id")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise ValueError(f"{value!r} is not a positive integer id")
    if not 0 < number < 2**63:
        raise ValueError(f"{value!r} is not a positive integer id")
    return number


PositiveId = Annotated[
    int,
    BeforeValidator(_to_id),
    WithJsonSchema(
        {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": r"^\d+$"}]}
    ),
]
"""A positive 63-bit id, as a number or a digit string (dbt Cloud ids come either way)."""

JSON_POINTER_PATTERN = r"^(/([^~/]|~[01])*)+$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$"
MEMORY_PATTERN = r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"

JsonPointer = Annotated[str, Field(pattern=JSON_POINTER_PATTERN)]


def secret_url(value: str, sends: str) -> SplitResult:
    """Check a URL that requests carrying a secret go to (``sends``: the secret, in words):
    https, or http to this machine only; no ``user:password@`` (httpx would send it as Basic
    auth in place of the secret, and URLs are printed). Messages never repeat the URL: its
    user part or path may be secret too."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError("is not a URL (is its port a number up to 65535?)") from None
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user or password (user:password@ before the host)")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("is not an https:// URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(
            f"uses http://, which would send {sends} in clear; use https:// "
            "(http:// is allowed only for loopback hosts)"
        )
    return parts


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine: the one place ``http://`` may carry a secret."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
