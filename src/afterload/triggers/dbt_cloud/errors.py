"""What goes wrong talking to dbt Cloud, worded as one sentence, and what is worth a retry."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from afterload.errors import AfterloadError


class DbtCloudError(AfterloadError):
    """A dbt Cloud call failed; ``fatal`` errors (401, 403, 404, 400) will not heal by waiting."""

    def __init__(self, message: str, *, fatal: bool, status_code: int | None = None) -> None:
        super().__init__(message)
        self.fatal = fatal
        self.status_code = status_code


class Transient(Exception):
    """A failure worth retrying; ``retry_after`` is the server's own wish, when it gave one."""

    def __init__(self, detail: str, *, retry_after: float | None = None, sent: bool = True):
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after
        # False only when the request surely never reached the server (connect failed, or
        # it answered 429): then a non-idempotent POST may simply be sent again.
        self.sent = sent


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when: datetime = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def user_message(body: Any) -> str:
    if isinstance(body, dict):
        status = body.get("status")
        if isinstance(status, dict) and status.get("user_message"):
            return str(status["user_message"])
        if body.get("detail"):
            return str(body["detail"])
    return ""


def field_messages(body: Any) -> str:
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict) and data:
        parts = []
        for key, value in data.items():
            text = "; ".join(map(str, value)) if isinstance(value, list) else str(value)
            parts.append(f"{key}: {text}")
        return ", ".join(parts)
    return user_message(body) or "no details given"


def _root_oserror(exc: BaseException) -> OSError | None:
    """The innermost OS error under httpx's wrapping ('All connection attempts failed')."""
    found: OSError | None = None
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if isinstance(node, OSError) and (node.errno is not None or found is None):
            found = node
        node = node.__cause__ or node.__context__
    return found


def describe_transport(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "the connection timed out"
    if isinstance(exc, httpx.TimeoutException):
        return "no answer before the request timeout"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the server closed the connection without an answer"
    root = _root_oserror(exc)
    if isinstance(root, ConnectionRefusedError):
        return "the connection was refused (is the server running, and the port right?)"
    if isinstance(root, socket.gaierror):
        return "the host name does not resolve"
    if root is not None and root.strerror:
        return f"cannot connect ({root.strerror.lower()})"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({exc})" if str(exc) else "cannot connect"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
