"""The webhook runner: the checkpoint entry it writes per commit, and retries in the background
against a real receiver on loopback (short retry floor, real time)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from afterload.config.problems import _redact_secret, validation_problems
from afterload.triggers.webhook.config import WebhookTrigger, WebhookTriggers
from afterload.triggers.webhook.delivery import RetryPolicy
from afterload.triggers.webhook.runner import WebhookRunner
from afterload.triggers.webhook.schedule import PendingState
from tests.conftest import until
from tests.webhook_receiver import Answer, Receiver

T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
FAST = RetryPolicy(wait_initial=0.01, wait_max=0.02)


@dataclass(frozen=True)
class Facts:
    sequence: int
    tables: tuple[str, ...]
    published_at: datetime | None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def make(receiver: Receiver, **kw: Any) -> WebhookRunner:
    hook = WebhookTrigger.model_validate(
        {
            "url": receiver.url + "/h",
            "headers": {"X-Key": "k-secret"},
            "payloadTemplate": '{"r": "{{run_id}}", "t": "{{collection_names}}"}',
            "maxAttempts": 1,
        }
    )
    return WebhookRunner("hook", hook, interval=0.0, materialization="m", policy=FAST, **kw)


def test_states_hold_the_upcoming_commit_before_it_stands() -> None:
    with Receiver() as receiver:
        runner = make(receiver)
    assert runner.states(Facts(1, (), T0)) == {runner.key: None}  # owes nothing: no entry
    entry = runner.states(Facts(5, ("orders",), T0))["webhook:hook"]
    state = PendingState.model_validate(entry)
    assert state.sealed is None and state.open is not None
    assert (state.open.first, state.open.last, state.open.collections) == (5, 5, ("orders",))
    runner.on_commit(Facts(5, ("orders",), T0))
    later = T0 + timedelta(seconds=3)
    entry = runner.states(Facts(6, ("users",), later))["webhook:hook"]
    merged = PendingState.model_validate(entry).open
    assert merged is not None
    assert (merged.first, merged.last, merged.collections) == (5, 6, ("orders", "users"))
    assert merged.published_max == later and merged.opened_at == T0

    # Restored in a new runner, the same windows are due at once.
    again = make(receiver)
    again.restore({"webhook:hook": entry, "webhook:other": {"junk": 1}})
    assert again.schedule.open == merged and again.schedule.due_at is not None


async def test_a_failed_window_is_retried_in_the_background_with_the_same_bytes(
    receiver: Receiver,
) -> None:
    receiver.script(503, 500)
    runner = make(receiver, retry_floor=0.1)
    await runner.start()
    try:
        runner.on_commit(Facts(1, ("orders",), T0))
        await until(lambda: any(r.status == 200 for r in receiver.requests))
        assert runner.changed()
    finally:
        await runner.stop(grace=2)
    bodies = {r.body for r in receiver.requests}
    assert [r.status for r in receiver.requests] == [503, 500, 200]
    assert len(bodies) == 1  # one window, one payload, one run_id
    assert [o.kind for o in runner.outcomes] == ["failed", "failed", "started"]
    assert all("k-secret" not in o.message for o in runner.outcomes)


async def test_stop_leaves_a_hung_delivery_pending(receiver: Receiver) -> None:
    receiver.script(Answer(status=200, delay=3.0))
    runner = make(receiver)
    await runner.start()
    runner.on_commit(Facts(1, ("orders",), T0))
    await until(lambda: bool(receiver.requests))
    await runner.stop(grace=0.2)
    state = runner.states(Facts(2, (), T0))
    assert PendingState.model_validate(state["webhook:hook"]).sealed is not None


def test_config_errors_never_echo_a_header_value() -> None:
    data = {
        "config": [
            {
                "url": "http://127.0.0.1/h",
                "headers": {"X-Key": "hdr-secret-value", "bad name": "other-secret"},
                "payloadTemplate": "{}",
            }
        ]
    }
    with pytest.raises(ValidationError) as caught:
        WebhookTriggers.model_validate(data)
    lines = validation_problems(caught.value, {}, "f.yaml")
    assert len(lines) == 1 and "'bad name' is not an HTTP header name" in lines[0]
    assert "secret" not in lines[0]
    # A message that would echo a header value (pydantic's own, for a bad type) is redacted.
    loc = ("triggers", "config", 0, "headers", "X-Key")
    said = _redact_secret(loc, "Input 'hdr-secret-value' is bad", "hdr-secret-value")
    assert said == "Input (hidden) is bad"
    whole = _redact_secret(("triggers", "config", 0), "got hdr-secret-value", data["config"][0])
    assert whole == "got (hidden)"
