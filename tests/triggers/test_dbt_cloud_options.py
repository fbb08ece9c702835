"""dbt Cloud run options, rerun_failed, select_changed and several jobs, against the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from afterload.clock import FakeClock
from afterload.config.load import parse_config
from afterload.core.materializer import Commit
from afterload.errors import ConfigError
from afterload.pipeline import materialize
from afterload.triggers.dbt_cloud.action import DbtCloudAction
from afterload.triggers.dbt_cloud.client import DbtCloudClient
from afterload.triggers.dbt_cloud.config import DbtJobTrigger
from afterload.triggers.dbt_cloud.emulator import DbtCloudEmulator, EmulatorServer
from afterload.triggers.dbt_cloud.emulator.settings import EmulatorSettings
from afterload.triggers.dbt_cloud.errors import DbtCloudError
from afterload.triggers.runner import JobTrigger
from tests.conftest import ACCOUNT, API_KEY, FAST_RETRY, JOB, until
from tests.materialize_support import write_config, write_lines

OPTIONS: dict[str, Any] = {
    "git_branch": "release/2.0",
    "git_sha": "0123abcd",
    "schema_override": "analytics_ci",
    "dbt_version_override": "versionless",
    "threads_override": 8,
    "target_name_override": "ci",
    "generate_docs_override": True,
    "timeout_seconds_override": 600,
    "steps_override": ["dbt seed", "dbt build --select orders+"],
}


def settings_for(server: EmulatorServer, job: int = JOB, **overrides: Any) -> DbtJobTrigger:
    values: dict[str, Any] = {
        "access_url": server.url,
        "account_id": ACCOUNT,
        "job_id": job,
        "api_key": API_KEY,
        "interval": "0s",
        "mode": "ignore",
    }
    values.update(overrides)
    return DbtJobTrigger.model_validate(values)


def posts(emulator: DbtCloudEmulator, suffix: str) -> list[dict[str, Any]]:
    return [r for r in emulator.requests if r["method"] == "POST" and r["path"].endswith(suffix)]


def commit(tables: tuple[str, ...], number: int = 1) -> Commit:
    return Commit(number, 1, 1, False, 0.0, number, tables, datetime.now(UTC))


async def fire(action: DbtCloudAction) -> Any:
    outcome = await action.fire()
    assert outcome.started, outcome.message
    return outcome


async def wait_end(action: DbtCloudAction, run_id: int) -> str:
    final = await action.client.wait_for_run(run_id, 20, poll=0.1)
    assert not final.is_active
    return final.status_humanized


@pytest.fixture
def failing() -> Iterator[tuple[DbtCloudEmulator, EmulatorServer]]:
    """An emulator whose every run ends in error, quickly."""
    emulator = DbtCloudEmulator(
        EmulatorSettings(
            accounts={ACCOUNT: [JOB, JOB + 1]},
            api_key=API_KEY,
            queue_seconds=0.05,
            run_seconds=0.1,
            fail_rate=1.0,
        )
    )
    with EmulatorServer(emulator) as srv:
        yield emulator, srv


async def test_run_options_go_verbatim_and_the_emulator_echoes_them(
    server: EmulatorServer, emulator: DbtCloudEmulator
) -> None:
    action = DbtCloudAction(settings_for(server, **OPTIONS), retry=FAST_RETRY)
    try:
        outcome = await fire(action)
    finally:
        await action.aclose()
    [run] = [r for r in emulator.runs if r["id"] == outcome.run_id]
    for name, value in OPTIONS.items():
        assert run["trigger"][name] == value, name
    assert run["git_branch"] == "release/2.0" and run["trigger"]["cause"] == "Estuary Flow"


async def test_rerun_failed_reruns_only_a_failed_run_afterload_started(
    failing: tuple[DbtCloudEmulator, EmulatorServer],
) -> None:
    emulator, server = failing
    action = DbtCloudAction(settings_for(server, rerun_failed=True), retry=FAST_RETRY)
    async with DbtCloudClient(action.settings.target(), retry=FAST_RETRY) as other:
        try:
            # Someone else's failed run is never rerun: afterload started none yet.
            theirs = await other.trigger_run("a person, by hand")
            await wait_end(action, theirs.id)
            first = await fire(action)
            assert posts(emulator, "/rerun/") == [] and len(posts(emulator, "/run/")) == 2
            assert await wait_end(action, first.run_id) == "Error"

            # Afterload's own run failed and is the job's newest: rerun from the failure.
            second = await fire(action)
            assert "reran failed run" in second.message
            assert not second.covers and first.covers  # newer data waits for a full run
            assert len(posts(emulator, "/rerun/")) == 1
            [run] = [r for r in emulator.runs if r["id"] == second.run_id]
            assert run["trigger"]["rerun_of"] == first.run_id
            assert await wait_end(action, second.run_id) == "Error"

            # A newer run that afterload did not start: a full run, not a rerun of theirs.
            theirs = await other.trigger_run("a person, by hand")
            await wait_end(action, theirs.id)
            third = await fire(action)
            assert "reran" not in third.message and len(posts(emulator, "/rerun/")) == 1
        finally:
            await action.aclose()


async def test_no_rerun_after_a_successful_run(
    server: EmulatorServer, emulator: DbtCloudEmulator
) -> None:
    action = DbtCloudAction(settings_for(server, rerun_failed=True), retry=FAST_RETRY)
    try:
        first = await fire(action)
        assert await wait_end(action, first.run_id) == "Success"
        await fire(action)
    finally:
        await action.aclose()
    assert posts(emulator, "/rerun/") == [] and len(posts(emulator, "/run/")) == 2


async def test_select_changed_builds_the_tables_that_received_data(
    server: EmulatorServer, emulator: DbtCloudEmulator
) -> None:
    settings = settings_for(server, select_changed={"source": "shop"})
    action = DbtCloudAction(settings, retry=FAST_RETRY, tables=["orders", "users", "items"])

    def steps(outcome: Any) -> list[str]:
        [run] = [r for r in emulator.runs if r["id"] == outcome.run_id]
        return list(run["trigger"]["steps_override"])

    try:
        # At start afterload does not know what an earlier process committed: every table.
        assert steps(await fire(action)) == [
            "dbt build --select source:shop.items+ source:shop.orders+ source:shop.users+"
        ]
        action.on_commit(commit(("users",), 1))
        action.on_commit(commit(("orders", "users"), 2))
        assert steps(await fire(action)) == [
            "dbt build --select source:shop.orders+ source:shop.users+"
        ]
        action.on_commit(commit(("items",), 3))
        assert steps(await fire(action)) == ["dbt build --select source:shop.items+"]
    finally:
        await action.aclose()


def test_select_changed_in_a_real_run(
    tmp_path: Path, server: EmulatorServer, emulator: DbtCloudEmulator
) -> None:
    block = settings_for(server, select_changed={"source": "raw"}).model_dump(mode="json")
    block["api_key"] = API_KEY
    bindings = [
        {"source": "in/orders*.ndjson", "table": "orders", "key": ["/id"]},
        {"source": "in/users*.ndjson", "table": "users", "key": ["/id"]},
    ]
    write_lines(tmp_path / "in/users1.ndjson", [{"id": 1}])
    loaded = write_config(tmp_path, bindings, dbt_job_trigger=_clean(block))
    report = materialize(loaded, once=True)
    [run] = [r for r in emulator.runs if r["id"] == report.runs[0]]
    assert run["trigger"]["steps_override"] == ["dbt build --select source:raw.users+"]


def _clean(block: dict[str, Any]) -> dict[str, Any]:
    """A dumped trigger block as a user would write it (no defaults, no nulls)."""
    return {k: v for k, v in block.items() if v not in (None, False) and k != "account_prefix"}


def test_several_jobs_each_with_its_own_options(
    tmp_path: Path, server: EmulatorServer, emulator: DbtCloudEmulator
) -> None:
    first = _clean(settings_for(server).model_dump(mode="json")) | {"api_key": API_KEY}
    second = _clean(settings_for(server, JOB + 1, git_branch="dev").model_dump(mode="json"))
    second["api_key"] = API_KEY
    write_lines(tmp_path / "in/orders1.ndjson", [{"id": 1}])
    loaded = write_config(
        tmp_path,
        [{"source": "in/orders*.ndjson", "table": "orders", "key": ["/id"]}],
        dbt_job_trigger=first,
        dbt_job_triggers=[second],
    )
    report = materialize(loaded, once=True)
    assert len(report.runs) == 2
    by_job = {r["job_definition_id"]: r for r in emulator.runs}
    assert set(by_job) == {JOB, JOB + 1}
    assert by_job[JOB]["trigger"]["git_branch"] is None
    assert by_job[JOB + 1]["trigger"]["git_branch"] == "dev"


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"rerun_failed": True, "threads_override": 4}, "rerun_failed cannot be combined"),
        ({"rerun_failed": True, "select_changed": {"source": "s"}}, "select_changed"),
        ({"select_changed": {"source": "s"}, "steps_override": ["dbt run"]}, "not both"),
        ({"select_changed": {"source": "not a name"}}, "select_changed.source"),
        ({"threads_override": 0}, "threads_override"),
    ],
)
def test_conflicting_options_are_one_line_config_errors(extra: dict[str, Any], says: str) -> None:
    text = (
        "dbt_job_trigger:\n"
        "  access_url: https://ab123.us1.dbt.com\n"
        "  account_id: 1\n"
        "  job_id: 2\n"
        "  api_key: dbtc_secret_value\n"
    )
    text += "".join(f"  {line}\n" for line in yaml.safe_dump(extra).splitlines())
    with pytest.raises(ConfigError) as caught:
        parse_config(text, Path("afterload.yaml"))
    message = str(caught.value)
    assert says in message and "afterload.yaml:" in message
    assert "dbtc_secret_value" not in message and "Traceback" not in message


async def test_the_emulator_refuses_options_of_the_wrong_type(
    server: EmulatorServer, emulator: DbtCloudEmulator
) -> None:
    settings = settings_for(server)
    async with DbtCloudClient(settings.target(), retry=FAST_RETRY) as client:
        with pytest.raises(DbtCloudError) as caught:
            await client.trigger_run("c", {"threads_override": "8", "steps_override": "dbt run"})
    message = str(caught.value)
    assert "threads_override: A valid integer is required." in message
    assert "steps_override: Expected a list" in message
    assert emulator.runs == []
    [refused] = posts(emulator, "/run/")
    assert refused["status"] == 400


async def test_after_a_rerun_newer_data_stays_pending_for_a_full_run(
    failing: tuple[DbtCloudEmulator, EmulatorServer],
) -> None:
    """A rerun rebuilds only what failed: data committed since is not covered by it."""
    _, server = failing
    settings = settings_for(server, rerun_failed=True)
    clock = FakeClock()
    client = DbtCloudClient(settings.target(), retry=FAST_RETRY, clock=clock)
    trig = JobTrigger(DbtCloudAction(settings, client=client), clock=clock)
    await trig.start(initial_fire=False)
    try:
        trig.notify_commit(1)
        await until(lambda: len(trig.outcomes) == 1)
        first = trig.outcomes[0]
        assert first.started and first.covers and not trig.core.pending
        async with DbtCloudClient(settings.target(), retry=FAST_RETRY) as watcher:
            assert (await watcher.wait_for_run(first.run_id or 0, 20, poll=0.1)).status == 20
        trig.notify_commit(1)
        await until(lambda: len(trig.outcomes) == 2)
        assert "reran failed run" in trig.outcomes[1].message
        assert trig.core.pending  # tried again later: a full run once the rerun is done
    finally:
        await trig.stop()
        await client.aclose()
