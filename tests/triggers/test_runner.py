"""The trigger's async shell against the emulator: modes, schedule, never blocking the caller."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from afterload.clock import FakeClock
from afterload.triggers.dbt_cloud.action import DbtCloudAction, fire_once
from afterload.triggers.dbt_cloud.client import DbtCloudClient
from afterload.triggers.dbt_cloud.config import DbtJobTrigger
from afterload.triggers.dbt_cloud.emulator import DbtCloudEmulator, Fault
from afterload.triggers.dbt_cloud.models import RunStatus
from afterload.triggers.runner import JobTrigger
from tests.conftest import API_KEY, FAST_RETRY, until


def trigger_for(settings: DbtJobTrigger, clock: FakeClock | None = None, **kw: float) -> JobTrigger:
    client = DbtCloudClient(settings.target(), retry=FAST_RETRY, clock=clock)
    return JobTrigger(DbtCloudAction(settings, client=client), clock=clock, **kw)


def triggered(emulator: DbtCloudEmulator) -> list[dict[str, object]]:
    return [
        r for r in emulator.requests if r["method"] == "POST" and str(r["path"]).endswith("/run/")
    ]


async def test_skip_starts_nothing_while_a_run_is_queued(
    make_settings: Callable[..., DbtJobTrigger], emulator: DbtCloudEmulator
) -> None:
    settings = make_settings(mode="skip")
    async with DbtCloudClient(settings.target(), retry=FAST_RETRY) as c:
        first = await fire_once(c, settings)
        second = await fire_once(c, settings)
    assert first.kind == "started" and first.message == f"started run {first.run_id}"
    assert second.kind == "skipped" and f"run {first.run_id} is queued" in second.message
    assert len(emulator.runs) == 1


async def test_replace_cancels_every_active_run_then_starts_one(
    make_settings: Callable[..., DbtJobTrigger], emulator: DbtCloudEmulator
) -> None:
    settings = make_settings(mode="replace")
    async with DbtCloudClient(settings.target(), retry=FAST_RETRY) as c:
        a = await c.trigger_run("a")
        b = await c.trigger_run("b")  # queued behind a: dbt runs a job's runs serially
        outcome = await fire_once(c, settings)
        statuses = {r.id: r.status for r in [await c.get_run(a.id), await c.get_run(b.id)]}
    assert outcome.kind == "started"
    assert set(outcome.cancelled) == {a.id, b.id}
    assert outcome.message == f"replaced runs {list(outcome.cancelled)} with {outcome.run_id}"
    assert set(statuses.values()) == {RunStatus.CANCELLED}


async def test_replace_tolerates_a_run_that_finished_meanwhile(
    make_settings: Callable[..., DbtJobTrigger], emulator: DbtCloudEmulator
) -> None:
    settings = make_settings(mode="replace")
    async with DbtCloudClient(settings.target(), retry=FAST_RETRY) as c:
        await c.trigger_run("a")
        # the run ends as the cancel arrives, and dbt answers with an error
        emulator.inject(Fault(method="POST", path=r"/cancel/?$", status=400, after=True))
        ended = await fire_once(c, settings)
        # a cancel refused while the run is still active is a real failure
        emulator.inject(Fault(method="POST", path=r"/cancel/?$", status=400))
        refused = await fire_once(c, settings)
    assert ended.kind == "started"
    assert refused.kind == "failed" and f"run {ended.run_id}" in refused.message


async def test_ignore_starts_another_without_listing(
    make_settings: Callable[..., DbtJobTrigger], emulator: DbtCloudEmulator
) -> None:
    settings = make_settings(mode="ignore")
    async with DbtCloudClient(settings.target(), retry=FAST_RETRY) as c:
        await fire_once(c, settings)
        outcome = await fire_once(c, settings)
    assert outcome.kind == "started"
    assert len(emulator.runs) == 2
    assert not any("status__in" in str(r["query"]) for r in emulator.requests)


async def test_fires_at_start_then_after_data_within_interval(
    make_settings: Callable[..., DbtJobTrigger], emulator: DbtCloudEmulator
) -> None:
    clock = FakeClock()
    trig = trigger_for(make_settings(mode="ignore", interval="30m"), clock)
    await trig.start()
    await until(lambda: len(trig.outcomes) == 1)
    assert len(emulator.runs) == 1  # the seed's start-up fire
    trig.notify_commit(0)  # a commit that stored nothing never fires
    trig.notify_commit(10)
    trig.notify_commit(5)
    await clock.advance(29 * 60)
    assert len(trig.outcomes) == 1
    await clock.advance(60)
    await until(lambda: len(trig.outcomes) == 2)
    assert len(emulator.runs) == 2  # two commits, one trailing fire
    await clock.advance(3600)
    assert len(trig.outcomes) == 2  # nothing new: no fire
    await trig.stop()


async def test_skipped_data_stays_pending_until_a_later_run(
    make_settings: Callable[..., DbtJobTrigger],
    emulator: DbtCloudEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="afterload.trigger")
    clock = FakeClock()
    settings = make_settings(mode="skip", interval="1m")
    async with DbtCloudClient(settings.target(), retry=FAST_RETRY) as c:
        blocker = await c.trigger_run("someone else")
    trig = trigger_for(settings, clock)
    await trig.start(initial_fire=False)
    trig.notify_commit(3)
    await until(lambda: len(trig.outcomes) == 1)
    assert trig.outcomes[0].kind == "skipped" and trig.core.pending
    assert f"skipped, run {blocker.id} is queued; next try at" in caplog.text
    async with DbtCloudClient(settings.target(), retry=FAST_RETRY) as c:
        await c.cancel_run(blocker.id)
    await clock.advance(60)
    await until(lambda: len(trig.outcomes) == 2)
    assert trig.outcomes[1].kind == "started" and not trig.core.pending
    await trig.stop()


async def test_failed_fire_is_retried_at_the_next_interval(
    make_settings: Callable[..., DbtJobTrigger], emulator: DbtCloudEmulator
) -> None:
    clock = FakeClock()
    trig = trigger_for(make_settings(mode="ignore", interval="5m"), clock)
    emulator.inject(Fault(method="POST", path=r"/run/?$", status=503, times=100))
    await trig.start()
    await until(lambda: len(trig.outcomes) == 1, timeout=30)
    assert trig.outcomes[0].kind == "failed" and trig.core.pending
    emulator.reset_faults() if hasattr(emulator, "reset_faults") else emulator.reset()
    await clock.advance(300)
    await until(lambda: len(trig.outcomes) == 2)
    assert trig.outcomes[1].kind == "started" and not trig.core.pending
    await trig.stop()


async def test_notify_commit_never_waits_for_dbt(
    make_settings: Callable[..., DbtJobTrigger], emulator: DbtCloudEmulator
) -> None:
    emulator.inject(Fault(method="POST", path=r"/run/?$", status=200, after=True, delay=2.0))
    trig = trigger_for(make_settings(mode="ignore", interval="0s"))
    await trig.start()
    await until(lambda: trig.core.in_flight is not None)
    for _ in range(100):
        trig.notify_commit(1)  # while the slow POST is in flight
    assert trig.outcomes == []  # returned before the fire completed
    await until(lambda: len(trig.outcomes) == 2, timeout=15)
    assert len(emulator.runs) == 2  # 100 commits in flight coalesced into one more fire
    await trig.stop()


async def test_stop_gives_an_in_flight_request_its_grace(
    make_settings: Callable[..., DbtJobTrigger], emulator: DbtCloudEmulator
) -> None:
    emulator.inject(Fault(method="POST", path=r"/run/?$", status=200, after=True, delay=5.0))
    trig = trigger_for(make_settings(mode="ignore"))
    await trig.start()
    await until(lambda: trig.core.in_flight is not None)
    await trig.stop(grace=0.2)
    assert trig.outcomes == []


async def test_key_never_in_trigger_logs(
    make_settings: Callable[..., DbtJobTrigger],
    emulator: DbtCloudEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    emulator.inject(Fault(method="POST", path=r"/run/?$", status=500, times=2))
    trig = trigger_for(make_settings(mode="replace"))
    await trig.start()
    await until(lambda: len(trig.outcomes) == 1)
    await trig.stop()
    assert API_KEY not in caplog.text and API_KEY not in repr(trig)


async def test_commits_reported_after_stop_are_harmless(
    make_settings: Callable[..., DbtJobTrigger], emulator: DbtCloudEmulator
) -> None:
    trig = trigger_for(make_settings(mode="ignore"))
    await trig.start(initial_fire=False)
    await until(lambda: trig._idle)
    await trig.stop()
    trig.notify_commit(5)  # e.g. a commit landing while the process shuts down
    assert emulator.runs == []
