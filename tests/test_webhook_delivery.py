"""Delivery against a real HTTP receiver on loopback: the payload and headers sent, Estuary's
retry rules (5xx/408/429 retried, other 4xx final, at most maxAttempts), Retry-After, the
per-attempt timeout, secrets kept out of messages, and no window delivered twice."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from afterload.triggers.webhook.config import WebhookTrigger
from afterload.triggers.webhook.delivery import (
    RetryPolicy,
    decide,
    deliver,
    make_client,
    parse_retry_after,
)
from afterload.triggers.webhook.schedule import WebhookSchedule
from afterload.triggers.webhook.window import Window
from tests.webhook_receiver import Answer, Receiver

FAST = RetryPolicy(wait_initial=0.01, wait_max=0.02, max_retry_after=5.0)
SECRET = "tok_9f8e7d6c5b4a-secret"
TEMPLATE = (
    '{"materialization": "{{materialization_name}}", "collections": '
    '[{{#each collection_names}}"{{this}}"{{#unless @last}}, {{/unless}}{{/each}}], '
    '"from": "{{flow_published_at_min}}", "to": "{{flow_published_at_max}}", '
    '"runId": "{{run_id}}", "key": "{{headers.X-Api-Key}}"}'
)
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def window(first: int, last: int | None = None, tables: tuple[str, ...] = ("orders",)) -> Window:
    w = Window.of_commit(
        first,
        opened_at=T0 + timedelta(seconds=first),
        published_min=T0 + timedelta(seconds=first),
        published_max=T0 + timedelta(seconds=first, milliseconds=500),
        collections=tables,
    )
    for seq in range(first + 1, (last or first) + 1):
        w = w.merge(window(seq, tables=tables))
    return w


def variables(w: Window) -> Any:
    return w.variables(materialization_name="acme/orders", connector_image="afterload:test")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(trust_env=False) as c:
        yield c


def make(receiver: Receiver, **overrides: Any) -> WebhookTrigger:
    values: dict[str, Any] = {
        "url": f"{receiver.url}/hooks/T000/B000/path-is-a-secret",
        "headers": {"X-Api-Key": SECRET},
        "payloadTemplate": TEMPLATE,
        "maxAttempts": 3,
    }
    values.update(overrides)
    return WebhookTrigger.model_validate(values)


async def test_payload_method_and_headers(receiver: Receiver, client: httpx.AsyncClient) -> None:
    trigger = make(receiver, method="PUT")
    w = window(4, 6, ("orders", "items"))
    result = await deliver("notify", trigger, variables(w), client=client, policy=FAST)
    assert result.delivered and result.attempts == 1 and result.status == 200
    (req,) = receiver.requests
    assert req.method == "PUT" and req.path == "/hooks/T000/B000/path-is-a-secret"
    assert req.headers["x-api-key"] == SECRET
    assert req.headers["content-type"] == "application/json"
    assert req.headers["user-agent"].startswith("afterload/")
    assert req.json() == {
        "materialization": "acme/orders",
        "collections": ["items", "orders"],
        "from": "2026-03-01T12:00:04Z",
        "to": "2026-03-01T12:00:06.500Z",
        "runId": "2026-03-01T12:00:04.000Z",
        "key": SECRET,
    }
    assert "path-is-a-secret" not in result.message and SECRET not in result.message


async def test_5xx_and_408_are_retried_with_the_same_body(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    receiver.script(500, 408, 200)
    result = await deliver("n", make(receiver), variables(window(1)), client=client, policy=FAST)
    assert result.delivered and result.attempts == 3
    assert [r.status for r in receiver.requests] == [500, 408, 200]
    assert len({r.body for r in receiver.requests}) == 1


async def test_429_waits_for_retry_after(receiver: Receiver, client: httpx.AsyncClient) -> None:
    receiver.script(Answer(429, headers={"Retry-After": "1"}), 200)
    result = await deliver("n", make(receiver), variables(window(1)), client=client, policy=FAST)
    assert result.delivered and result.attempts == 2
    first, second = receiver.requests
    assert second.at - first.at >= 0.95  # the backoff alone would be 10 ms


async def test_a_retry_after_past_the_cap_ends_the_delivery_for_the_schedule(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    receiver.script(Answer(503, headers={"Retry-After": "600"}))
    result = await deliver("n", make(receiver), variables(window(1)), client=client, policy=FAST)
    assert not result.delivered and result.attempts == 1 and result.retry_after == 600
    assert "asked to retry after 600 s" in result.message


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_other_4xx_are_final(
    receiver: Receiver, client: httpx.AsyncClient, status: int
) -> None:
    receiver.script(Answer(status, body="rejected:", echo_header="X-Api-Key"))
    result = await deliver("slack", make(receiver), variables(window(1)), client=client)
    assert not result.delivered and result.attempts == 1 and result.status == status
    assert len(receiver.requests) == 1
    assert result.message.startswith(f"webhook slack ({receiver.url}): answered {status}")
    assert "rejected: (hidden)" in result.message  # the receiver echoed the key
    assert SECRET not in result.message and "path-is-a-secret" not in result.message
    assert "\n" not in result.message


async def test_redirects_are_not_followed(receiver: Receiver, client: httpx.AsyncClient) -> None:
    receiver.script(Answer(307, headers={"Location": "https://elsewhere.invalid/"}))
    result = await deliver("n", make(receiver), variables(window(1)), client=client, policy=FAST)
    assert not result.delivered and len(receiver.requests) == 1
    assert "redirects are not followed" in result.message


async def test_at_most_max_attempts(receiver: Receiver, client: httpx.AsyncClient) -> None:
    receiver.default = Answer(503)
    trigger = make(receiver, maxAttempts=4)
    result = await deliver("n", trigger, variables(window(1)), client=client, policy=FAST)
    assert not result.delivered and result.attempts == 4 and len(receiver.requests) == 4
    assert "answered 503 Service Unavailable" in result.message
    assert "after 4 attempts" in result.message


async def test_each_attempt_has_the_timeout(receiver: Receiver, client: httpx.AsyncClient) -> None:
    receiver.default = Answer(200, delay=1.0)
    trigger = make(receiver, timeout="200ms", maxAttempts=2)
    result = await deliver("n", trigger, variables(window(1)), client=client, policy=FAST)
    assert not result.delivered and result.attempts == 2 and len(receiver.requests) == 2
    assert "no answer within the 0.2 s timeout" in result.message
    assert result.elapsed < 0.9


async def test_a_receiver_that_is_down_is_retried(client: httpx.AsyncClient) -> None:
    with Receiver() as gone:
        url = gone.url
    trigger = WebhookTrigger.model_validate({"url": url, "payloadTemplate": "{}"})
    result = await deliver("n", trigger, variables(window(1)), client=client, policy=FAST)
    assert not result.delivered and result.attempts == 3
    assert "the connection failed" in result.message


def test_decide_is_estuarys_rule() -> None:
    assert decide(204, attempt=1, max_attempts=3).kind == "delivered"
    for status in (0, 408, 429, 500, 502, 599):
        assert decide(status, attempt=1, max_attempts=3).kind == "retry"
        assert decide(status, attempt=3, max_attempts=3).kind == "failed"
    for status in (301, 400, 404, 409, 451):
        assert decide(status, attempt=1, max_attempts=3).kind == "failed"
    assert decide(429, attempt=1, max_attempts=3, retry_after=2.0).wait == 2.0
    assert decide(429, attempt=1, max_attempts=3, retry_after=61.0).kind == "failed"
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after("7") == 7.0


async def test_no_window_is_delivered_twice(receiver: Receiver, client: httpx.AsyncClient) -> None:
    """The schedule and delivery together, through failures: each commit reaches the receiver
    in exactly one successful delivery, and every attempt at a window sends the same bytes."""
    receiver.script(200, 500, 500, 500, 503, 200, 429, 200, 200)
    trigger = make(receiver, maxAttempts=3)
    schedule = WebhookSchedule(interval=0, retry_floor=1.0, retry_cap=2.0)
    now = 0.0
    done: list[Window] = []
    for seq in range(1, 13):
        now += 0.4
        schedule.commit(now, window(seq, tables=("orders",) if seq % 2 else ("items",)))
        w = schedule.begin(now)
        if w is not None:
            result = await deliver("n", trigger, variables(w), client=client, policy=FAST)
            schedule.finish(now, delivered=result.delivered)
            done += [w] if result.delivered else []
    while schedule.pending:
        assert schedule.due_at is not None
        now = max(now, schedule.due_at)
        w = schedule.begin(now)
        assert w is not None
        result = await deliver("n", trigger, variables(w), client=client, policy=FAST)
        schedule.finish(now, delivered=result.delivered)
        done += [w] if result.delivered else []
    assert [n for w in done for n in range(w.first, w.last + 1)] == list(range(1, 13))
    bodies: dict[str, set[bytes]] = {}
    ok: list[str] = []
    for req in receiver.requests:
        run_id = req.json()["runId"]
        bodies.setdefault(run_id, set()).add(req.body)
        if req.status == 200:
            ok.append(run_id)
    assert all(len(b) == 1 for b in bodies.values())  # a retry never changes the payload
    assert len(ok) == len(set(ok))  # no window twice
    assert any(len(v) == 1 for v in bodies.values()) and len(ok) >= 2
    firsts = sorted(datetime.fromisoformat(r.replace("Z", "+00:00")) for r in ok)
    covered = [(f - T0).total_seconds() for f in firsts]
    assert covered[0] == 1.0 and covered == sorted(covered)
    assert schedule.delivered_through == 12
    assert json.loads(receiver.requests[-1].body)["collections"]
