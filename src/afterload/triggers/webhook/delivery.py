"""One delivery of one window to one webhook: render, send, retry as Estuary does.

Estuary's rules: a 2xx is delivered; 5xx, 408 and 429 are retried with exponential backoff
(1 s, 2 s, 4 s … capped at 30 s) up to ``maxAttempts`` attempts in all, the first included;
any other 4xx fails at once. Transport errors and timeouts (``timeout`` per attempt) are
retried too. Added here: a ``Retry-After`` is honoured (one longer than a minute ends the
delivery, and the schedule waits that long before the next one), redirects are not followed
(a 3xx is final: following one would carry the secret headers elsewhere), and errors name the
trigger and the URL's origin only — never a header value, never the URL's path (a Slack
webhook's path is its secret).

The rules live in :func:`decide`, a pure function; :func:`deliver` is the I/O around it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

import httpx
import stamina

from afterload import __version__
from afterload.redaction import hide, reason
from afterload.triggers.webhook.config import WebhookTrigger
from afterload.triggers.webhook.template import TemplateError
from afterload.triggers.webhook.window import TriggerVariables

log = logging.getLogger("afterload.webhook")

#: The status a transport error (no answer) counts as in :func:`decide`.
NO_ANSWER = 0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Estuary's backoff: 1 s doubling to 30 s, no jitter; ``Retry-After`` up to 60 s."""

    wait_initial: float = 1.0
    wait_max: float = 30.0
    max_retry_after: float = 60.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do after one attempt: done, wait and try again, or give up."""

    kind: Literal["delivered", "retry", "failed"]
    wait: float | None = None  # for "retry": the server's wish; None means the backoff
    retry_after: float | None = None  # for "failed": the server's wish for the next delivery


def decide(
    status: int,
    *,
    attempt: int,
    max_attempts: int,
    retry_after: float | None = None,
    policy: RetryPolicy = RetryPolicy(),
) -> Verdict:
    """Estuary's retry rule for one answer (``status`` 0: none came); ``attempt`` counts from 1."""
    if 200 <= status < 300:
        return Verdict("delivered")
    retryable = status in (NO_ANSWER, 408, 429) or status >= 500
    if not retryable:
        return Verdict("failed")
    if retry_after is not None and retry_after > policy.max_retry_after:
        return Verdict("failed", retry_after=retry_after)
    if attempt >= max_attempts:
        return Verdict("failed", retry_after=retry_after)
    return Verdict("retry", wait=retry_after)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How a delivery ended, in words fit for a log line and a ledger row (no secrets)."""

    trigger: str
    delivered: bool
    attempts: int
    message: str
    status: int | None = None
    retry_after: float | None = None
    elapsed: float = 0.0


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class _Again(Exception):
    """An attempt worth repeating; carries the server's wait, if it gave one."""

    def __init__(self, wait: float | None) -> None:
        super().__init__()
        self.wait = wait


def _describe(exc: httpx.TransportError, timeout: float) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within the {timeout:g} s timeout"
    if isinstance(exc, httpx.ConnectError):
        return "the connection failed (is the receiver running, and the port right?)"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection closed without an answer"
    return f"the request failed ({type(exc).__name__})"


def _excerpt(response: httpx.Response, secrets: list[str]) -> str:
    """A short, printable piece of the answer's body, any header value in it hidden."""
    text = hide(response.text[:300], secrets)
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return f": {text[:160]}" if text else ""


def _answer(response: httpx.Response, secrets: list[str]) -> tuple[int, str, float | None]:
    """Status, words for a log line, and the server's ``Retry-After`` of one answer."""
    status = response.status_code
    detail = f"answered {status} {reason(status)}".rstrip() + _excerpt(response, secrets)
    if 300 <= status < 400:
        detail += " (redirects are not followed: set url to the final address)"
    return status, detail, parse_retry_after(response.headers.get("Retry-After"))


async def deliver(
    name: str,
    trigger: WebhookTrigger,
    variables: TriggerVariables,
    *,
    client: httpx.AsyncClient,
    policy: RetryPolicy = RetryPolicy(),
) -> DeliveryResult:
    """Render the payload for ``variables`` and send it, retrying as :func:`decide` says."""
    where = f"webhook {name} ({trigger.endpoint()})"
    headers = trigger.header_values()
    started = time.monotonic()
    try:
        body = trigger.template().render(variables, headers).encode("utf-8")
    except TemplateError as exc:
        return DeliveryResult(name, False, 0, f"{where}: the payloadTemplate {exc}")
    request_headers = {"User-Agent": f"afterload/{__version__}"}
    if trigger.sends_json and not any(h.lower() == "content-type" for h in headers):
        request_headers["Content-Type"] = "application/json"
    request_headers.update(headers)
    timeout = trigger.timeout.total_seconds()
    secrets = [*headers.values(), *trigger.url_secrets()]

    attempts = 0
    status: int | None = None
    detail = ""
    verdict = Verdict("failed")

    def backoff(exc: Exception) -> bool | float:
        if not isinstance(exc, _Again):
            return False
        return True if exc.wait is None else exc.wait

    try:
        async for attempt in stamina.retry_context(
            on=backoff,
            attempts=trigger.maxAttempts,
            timeout=None,
            wait_initial=policy.wait_initial,
            wait_max=policy.wait_max,
            wait_jitter=0.0,
            wait_exp_base=2.0,
        ):
            with attempt:
                attempts = attempt.num
                retry_after: float | None = None
                try:
                    response = await client.request(
                        trigger.method,
                        trigger.url,
                        content=body,
                        headers=request_headers,
                        timeout=httpx.Timeout(timeout),
                    )
                except httpx.TransportError as exc:
                    status, detail = NO_ANSWER, _describe(exc, timeout)
                else:
                    status, detail, retry_after = _answer(response, secrets)
                verdict = decide(
                    status,
                    attempt=attempts,
                    max_attempts=trigger.maxAttempts,
                    retry_after=retry_after,
                    policy=policy,
                )
                if verdict.kind == "retry":
                    log.warning(
                        "%s: %s (attempt %d of %d)", where, detail, attempts, trigger.maxAttempts
                    )
                    raise _Again(verdict.wait)
    except _Again:  # stamina ran out first: decide() would have said so on the last attempt
        verdict = Verdict("failed")
    elapsed = time.monotonic() - started
    code = None if status in (None, NO_ANSWER) else status
    if verdict.kind == "delivered":
        text = f"{where}: delivered ({status}) after {attempts} attempt" + "s" * (attempts > 1)
        return DeliveryResult(name, True, attempts, text, status=code, elapsed=elapsed)
    tries = f"after {attempts} attempt" + "s" * (attempts > 1)
    later = ""
    if verdict.retry_after is not None and verdict.retry_after > policy.max_retry_after:
        later = f"; it asked to retry after {verdict.retry_after:g} s"
    return DeliveryResult(
        name,
        False,
        attempts,
        f"{where}: {detail}, {tries}{later}",
        status=code,
        retry_after=verdict.retry_after,
        elapsed=elapsed,
    )


def make_client(*, trust_env: bool = True) -> httpx.AsyncClient:
    """One client for all webhooks: pooled connections, redirects not followed."""
    return httpx.AsyncClient(follow_redirects=False, trust_env=trust_env)
