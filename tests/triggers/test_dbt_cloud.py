"""The API client over real loopback HTTP against the emulator."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from afterload.triggers.dbt_cloud.client import DbtCloudClient
from afterload.triggers.dbt_cloud.config import DbtJobTrigger
from afterload.triggers.dbt_cloud.emulator import DbtCloudEmulator, EmulatorServer, Fault
from afterload.triggers.dbt_cloud.errors import DbtCloudError
from afterload.triggers.dbt_cloud.models import RunStatus
from tests.conftest import ACCOUNT, API_KEY, FAST_RETRY, JOB


def client(settings: DbtJobTrigger, **kw: Any) -> DbtCloudClient:
    return DbtCloudClient(settings.target(), retry=FAST_RETRY, **kw)


def posts(emulator: DbtCloudEmulator) -> list[dict[str, object]]:
    return [r for r in emulator.requests if r["method"] == "POST" and "/run" in str(r["path"])]


async def test_get_job_and_headers(
    make_settings: Callable[..., DbtJobTrigger], emulator: DbtCloudEmulator
) -> None:
    async with client(make_settings()) as c:
        job = await c.get_job()
    assert job.id == JOB
    (req,) = emulator.requests
    assert req["path"] == f"/api/v2/accounts/{ACCOUNT}/jobs/{JOB}/"
    assert API_KEY not in repr(emulator.requests)


async def test_active_runs_ask_for_queued_starting_running(
    make_settings: Callable[..., DbtJobTrigger], emulator: DbtCloudEmulator
) -> None:
    async with client(make_settings()) as c:
        first = await c.trigger_run("one")
        active = await c.list_active_runs()
    assert [r.id for r in active] == [first.id]
    assert active[0].status == RunStatus.QUEUED  # the original asked only for running (3)
    query = str(emulator.requests[-1]["query"])
    assert "status__in=%5B1%2C2%2C3%5D" in query or "status__in=[1,2,3]" in query
    assert "order_by=-id" in query and "limit=100" in query


@pytest.mark.parametrize("cause", ['say "hi"', "back\\slash", "naïve ünïcødé ✓ 数据", "x" * 255])
async def test_cause_arrives_intact(
    make_settings: Callable[..., DbtJobTrigger], emulator: DbtCloudEmulator, cause: str
) -> None:
    async with client(make_settings(cause=cause)) as c:
        run = await c.trigger_run(cause)
        again = await c.get_run(run.id)
    assert run.cause == cause and again.cause == cause
    assert run.id > 2**32  # 64-bit ids survive


async def test_retries_500_then_succeeds_with_one_run(
    make_settings: Callable[..., DbtJobTrigger], emulator: DbtCloudEmulator
) -> None:
    emulator.inject(Fault(method="POST", path=r"/run/?$", status=500, times=2))
    async with client(make_settings()) as c:
        run = await c.trigger_run("c")
    assert len(emulator.runs) == 1 and emulator.runs[0]["id"] == run.id
    assert len(posts(emulator)) == 3


async def test_429_honours_retry_after(
    make_settings: Callable[..., DbtJobTrigger], emulator: DbtCloudEmulator
) -> None:
    emulator.inject(Fault(method="GET", path=r"/jobs/", status=429, retry_after=1, times=1))
    async with client(make_settings()) as c:
        started = time.monotonic()
        await c.get_job()
        waited = time.monotonic() - started
    assert waited >= 0.95  # FAST_RETRY alone would wait about 0.02 s


@pytest.mark.parametrize(
    "fault",
    [
        Fault(method="POST", path=r"/run/?$", status=500, after=True),
        Fault(method="POST", path=r"/run/?$", status=502, after=True, body="<html>Bad</html>"),
        Fault(method="POST", path=r"/run/?$", status=200, after=True, body="<html>ok</html>"),
        Fault(method="POST", path=r"/run/?$", drop=True),
    ],
    ids=["500-after-create", "502-html", "200-html", "dropped"],
)
async def test_ambiguous_failure_never_creates_two_runs(
    make_settings: Callable[..., DbtJobTrigger], emulator: DbtCloudEmulator, fault: Fault
) -> None:
    emulator.inject(fault)
    async with client(make_settings()) as c:
        run = await c.trigger_run("once")
    assert [r["id"] for r in emulator.runs] == [run.id]
    assert len(posts(emulator)) == 1  # adopted, not re-posted


async def test_response_after_client_timeout_is_adopted(
    make_settings: Callable[..., DbtJobTrigger], emulator: DbtCloudEmulator
) -> None:
    emulator.inject(Fault(method="POST", path=r"/run/?$", status=200, after=True, delay=1.5))
    async with client(make_settings(), timeout=httpx.Timeout(0.5)) as c:
        run = await c.trigger_run("slow")
    assert [r["id"] for r in emulator.runs] == [run.id]


async def test_adoption_ignores_runs_that_existed_before(
    make_settings: Callable[..., DbtJobTrigger], emulator: DbtCloudEmulator
) -> None:
    async with client(make_settings()) as c:
        old = await c.trigger_run("old")
        emulator.inject(Fault(method="POST", path=r"/run/?$", status=503))  # not created
        new = await c.trigger_run("new")
    assert new.id != old.id and len(emulator.runs) == 2


async def test_401_is_one_clear_sentence_without_the_key(
    make_settings: Callable[..., DbtJobTrigger],
    emulator: DbtCloudEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with client(make_settings(api_key="wrong-key-123")) as c:
        with pytest.raises(DbtCloudError) as info:
            await c.get_job()
    text = str(info.value)
    assert info.value.fatal and info.value.status_code == 401
    assert f"rejected the API key for account {ACCOUNT}" in text and "Invalid token." in text
    assert "access_url" in text and "\n" not in text
    assert "wrong-key-123" not in text + caplog.text


@pytest.mark.parametrize("status", [401, 403, 400, 409])
async def test_an_answer_echoing_the_key_never_shows_it(
    make_settings: Callable[..., DbtJobTrigger], emulator: DbtCloudEmulator, status: int
) -> None:
    """A proxy or a server may quote the request's Authorization header in its error."""
    key = "echoed-key-4711"
    body = json.dumps(
        {"status": {"is_success": False, "user_message": f"bad token Token {key}"}, "data": {}}
    )
    fault = Fault(path=r"/jobs/", status=status, body=body, content_type="application/json")
    emulator.inject(fault)
    async with client(make_settings(api_key=key)) as c:
        with pytest.raises(DbtCloudError) as info:
            await c.get_job()
    assert key not in str(info.value) and "(hidden)" in str(info.value)


async def test_404_names_job_and_account(make_settings: Callable[..., DbtJobTrigger]) -> None:
    async with client(make_settings(job_id=999)) as c:
        with pytest.raises(DbtCloudError, match=f"job 999 was not found in account {ACCOUNT}"):
            await c.get_job()
        with pytest.raises(DbtCloudError, match="job 999 was not found"):
            await c.trigger_run("x")


async def test_400_gives_dbt_field_messages(
    make_settings: Callable[..., DbtJobTrigger], emulator: DbtCloudEmulator
) -> None:
    body = (
        '{"status":{"code":400,"is_success":false,"user_message":"The request was invalid."},'
        '"data":{"cause":["Ensure this field has no more than 255 characters."]}}'
    )
    emulator.inject(Fault(method="POST", path=r"/run/?$", status=400, body=body))
    async with client(make_settings()) as c:
        with pytest.raises(DbtCloudError, match="cause: Ensure this field has no more than 255"):
            await c.trigger_run("x")
    assert len(posts(emulator)) == 1  # no retry on 4xx


async def test_unreachable_host_names_the_url(caplog: pytest.LogCaptureFixture) -> None:
    settings = DbtJobTrigger(
        access_url="http://127.0.0.1:9", account_id=1, job_id=2, api_key="k-unreachable"
    )
    async with client(settings) as c:
        with pytest.raises(DbtCloudError) as info:
            await c.get_job()
    assert not info.value.fatal
    assert "http://127.0.0.1:9/api/v2/accounts/1/jobs/2/" in str(info.value)
    assert "refused" in str(info.value)
    assert "k-unreachable" not in str(info.value) + caplog.text


async def test_cancel_and_wait(make_settings: Callable[..., DbtJobTrigger]) -> None:
    async with client(make_settings()) as c:
        run = await c.trigger_run("c")
        cancelled = await c.cancel_run(run.id)
        assert cancelled.status == RunStatus.CANCELLED
        again = await c.cancel_run(run.id)  # finished already: not an error
        assert again.status == RunStatus.CANCELLED
        second = await c.trigger_run("d")
        final = await c.wait_for_run(second.id, timeout=20, poll=0.1)
    assert final.status == RunStatus.SUCCESS


async def test_repr_hides_the_key(
    make_settings: Callable[..., DbtJobTrigger], server: EmulatorServer
) -> None:
    c = client(make_settings())
    assert API_KEY not in repr(c) and server.url in repr(c)
    await c.aclose()
