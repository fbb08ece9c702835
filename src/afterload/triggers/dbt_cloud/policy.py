"""How long one dbt Cloud request may take, and how often a failed one is tried again.

The client's limits, kept apart from the client that obeys them: the timeouts (the run's
default, which ``AFTERLOAD_DBT_TIMEOUT`` overrides, and the short one for commands a user waits
on), the :class:`RetryPolicy`, and :func:`retrying`, which applies a policy to the transient
failures, honouring the server's ``Retry-After``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import stamina

from afterload.errors import AfterloadError
from afterload.triggers.dbt_cloud.errors import Transient

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def default_timeout() -> httpx.Timeout:
    """30 s a request, 10 s to connect; ``AFTERLOAD_DBT_TIMEOUT`` (seconds) overrides both."""
    raw = os.environ.get("AFTERLOAD_DBT_TIMEOUT")
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        raise AfterloadError(f"AFTERLOAD_DBT_TIMEOUT: {raw!r} is not a number of seconds") from None
    if not 0 < seconds <= 3600:
        raise AfterloadError(f"AFTERLOAD_DBT_TIMEOUT: {raw!r} is not within 0 to 3600 seconds")
    return httpx.Timeout(seconds, connect=min(10.0, seconds))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """About 5 attempts within 2 minutes, exponential backoff with jitter, capped at 30 s."""

    attempts: int = 5
    timeout: float = 120.0
    wait_initial: float = 1.0
    wait_max: float = 30.0
    wait_jitter: float = 1.0
    max_retry_after: float = 60.0


ONE_ATTEMPT = RetryPolicy(attempts=1, timeout=10.0)
"""For interactive commands (``check``, ``status``): a user waits, so they get an answer, not a
minute of backoff; retries are for the long-running loop."""
INTERACTIVE_TIMEOUT = httpx.Timeout(8.0, connect=3.0)


def interactive_timeout() -> httpx.Timeout:
    """A few seconds at most; ``AFTERLOAD_DBT_TIMEOUT`` may shorten it, never lengthen it."""
    configured = default_timeout()
    if configured is DEFAULT_TIMEOUT:
        return INTERACTIVE_TIMEOUT
    seconds = min(configured.read or 8.0, 8.0)
    return httpx.Timeout(seconds, connect=min(3.0, seconds))


def retrying(
    policy: RetryPolicy, *, on_retry: Callable[[], None]
) -> AsyncIterator[stamina.Attempt]:
    """Attempts under ``policy``, retrying only :class:`Transient` failures; ``on_retry`` is
    told of each one (the client counts them for its metrics)."""

    def backoff(exc: Exception) -> bool | float:
        if not isinstance(exc, Transient):
            return False
        on_retry()
        if exc.retry_after is not None:
            return min(exc.retry_after, policy.max_retry_after)
        return True

    return stamina.retry_context(
        on=backoff,
        attempts=policy.attempts,
        timeout=policy.timeout,
        wait_initial=policy.wait_initial,
        wait_max=policy.wait_max,
        wait_jitter=policy.wait_jitter,
    )
