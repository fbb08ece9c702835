"""Real dbt in real child processes on a real DuckDB file loaded by afterload.

Each test starts dbt a few times; dbt's own start-up (imports, parse) is most of the time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from afterload.triggers.dbt_core import DbtResult, FireContext
from tests.triggers.dbt_core.conftest import Runners, gone

pytest.importorskip(
    "dbt.cli.main",
    reason="dbt-core is not installed "
    "(pip install -c constraints/dbt.txt -e '.[dbt-duckdb,dbt-postgres]')",
)
pytestmark = pytest.mark.slow


def one_sentence(result: DbtResult) -> None:
    assert "\n" not in result.message and "Traceback" not in result.message, result.message


async def model_started(caplog: pytest.LogCaptureFixture, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not any("START python table model" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "dbt never started the model"
        await asyncio.sleep(0.1)


async def test_a_build_succeeds_and_its_run_results_are_read(
    runners: Runners, caplog: pytest.LogCaptureFixture
) -> None:
    runner = runners(vars={"since": "{{ flow_published_at_min }}"}, command="build")
    since = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    fired = await runner.fire(FireContext(flow_published_at_min=since))
    assert fired.started and fired.run is not None
    result = await fired.run.result()
    assert (result.outcome, result.exit_code, result.returncode) == ("success", 0, 0), (
        result.message
    )
    assert result.run_results is not None
    nodes = {r.unique_id: r.status for r in result.run_results.results}
    assert nodes["model.afterload_test.order_totals"] == "success"
    assert sorted(s for n, s in nodes.items() if n.startswith("test.")) == ["pass", "pass"]
    assert result.run_results.elapsed_time > 0
    assert result.message.startswith("dbt build succeeded: 3 nodes")
    con = duckdb.connect(str(runners.warehouse), read_only=True)
    try:
        rows = con.sql(
            "select status, orders, amount, since from order_totals order by 1"
        ).fetchall()
    finally:
        con.close()
    assert rows == [("paid", 2, 42.5, since.isoformat())]
    info = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert any("OK created sql" in m and "order_totals" in m for m in info)
    assert not runners.turns.busy() and runner.slot.holder() is None and gone(fired.run.pid)


async def test_a_missing_project_and_a_profile_that_does_not_parse(
    runners: Runners, tmp_path: Path
) -> None:
    fired = await runners(project_dir=str(tmp_path / "nowhere")).fire()
    assert (fired.kind, fired.message) == (
        "failed",
        f"dbt_core_trigger.project_dir: {tmp_path / 'nowhere'} does not exist",
    )
    fired = await runners(project_dir=str(tmp_path)).fire()
    assert fired.message.endswith("has no dbt_project.yml")
    (tmp_path / "profiles.yml").write_text("shop:\n  outputs: {dev: {type: duckdb\n")
    runner = runners(profiles_dir=str(tmp_path))
    fired = await runner.fire()
    assert fired.kind == "failed"
    assert fired.message.startswith(f"dbt_core_trigger.profiles_dir: {tmp_path}/profiles.yml:3:")
    assert "does not parse" in fired.message
    assert not (await runner.check()).ok


async def test_check_parses_without_touching_the_warehouse(
    runners: Runners, tmp_path: Path
) -> None:
    runner = runners()
    with runners.turns.turn():  # the loader holds the file: parse must not need it
        con = duckdb.connect(str(runners.warehouse))
        try:
            ok = await runner.check()
        finally:
            con.close()
    assert ok.ok, ok.message
    (tmp_path / "profiles.yml").write_text(
        "afterload_test:\n  target: x\n  outputs:\n    x: {type: nosuchadapter}\n"
    )
    bad = await runners(profiles_dir=str(tmp_path)).check()
    assert not bad.ok
    assert bad.message.startswith("dbt parse failed: ")
    assert "\n" not in bad.message


async def test_replace_interrupts_the_running_dbt_and_starts_another(
    runners: Runners, caplog: pytest.LogCaptureFixture
) -> None:
    slow = runners(slow=60, select="slow")
    first = await slow.fire()
    assert first.run is not None
    await model_started(caplog)
    t0 = time.monotonic()
    second = await runners(mode="replace").fire()  # another runner: as from another process
    assert second.started and second.replaced == (first.run.pid,), second.message
    old = await first.run.result()
    assert old.outcome == "cancelled", old.message
    assert gone(first.run.pid)
    assert time.monotonic() - t0 < 3 * 2.0 + 5  # SIGINT, then at worst SIGTERM and SIGKILL
    assert second.run is not None
    assert (await second.run.result()).outcome == "success"


async def test_skip_leaves_a_running_dbt_alone_and_ignore_starts_after_it(
    runners: Runners,
) -> None:
    first = await runners(slow=3, select="slow").fire()
    assert first.run is not None
    skipped = await runners(mode="skip").fire()
    assert (skipped.kind, skipped.message, skipped.run) == (
        "skipped",
        f"skipped, dbt (pid {first.run.pid}) is running",
        None,
    )
    assert first.run.running
    second = await runners(mode="ignore").fire()
    assert second.started and second.run is not None
    assert not first.run.running  # the second dbt started only after the first ended
    assert (await first.run.result()).outcome == "success"
    assert (await second.run.result()).outcome == "success"


async def test_a_timeout_stops_the_whole_process_group(runners: Runners) -> None:
    runner = runners(slow=60, select="slow", timeout="3s")
    fired = await runner.fire()
    assert fired.run is not None
    result = await fired.run.result()
    assert (result.outcome, result.exit_code) == ("timeout", 3)
    assert result.message == "dbt build did not finish within 3s and was stopped"
    assert gone(fired.run.pid)
    assert runner.slot.holder() is None and not runners.turns.busy()


async def test_a_dbt_killed_with_sigkill_is_an_error_and_frees_the_file(
    runners: Runners, caplog: pytest.LogCaptureFixture
) -> None:
    runner = runners(slow=60, select="slow")
    fired = await runner.fire()
    assert fired.run is not None
    await model_started(caplog)  # dbt holds the DuckDB file now
    os.kill(fired.run.pid, signal.SIGKILL)
    result = await fired.run.result()
    assert (result.outcome, result.message) == (
        "error",
        f"dbt build (pid {fired.run.pid}) was killed by SIGKILL",
    )
    with runners.turns.turn(timeout=5):
        duckdb.connect(str(runners.warehouse)).close()  # the loader's turn comes at once


async def test_the_loader_waits_while_dbt_holds_duckdb_and_dbt_waits_for_a_commit(
    runners: Runners,
) -> None:
    runner = runners(slow=2, select="slow")
    commit_done = threading.Event()

    committed_at: list[float] = []

    def commit_in_turn(key: int, hold: float) -> None:
        with runners.turns.turn(timeout=120):
            con = duckdb.connect(str(runners.warehouse))  # never "Could not set lock on file"
            try:
                con.execute(
                    "insert into orders (id, amount, status, flow_document, flow_published_at)"
                    " values (?, 1, 'paid', '{}', now())",
                    [key],
                )
                time.sleep(hold)
            finally:
                con.close()
        committed_at.append(time.monotonic())
        commit_done.set()

    fired = await runner.fire()
    fired_at = time.monotonic()
    assert fired.run is not None
    loader = threading.Thread(target=commit_in_turn, args=(10, 0))
    loader.start()
    result = await fired.run.result()
    await asyncio.to_thread(loader.join, 60)
    assert result.outcome == "success" and commit_done.is_set()
    assert committed_at[0] - fired_at >= 2  # the commit waited out dbt's 2 s model
    # now the other way round: a commit is in flight, dbt waits for it
    commit_done.clear()
    loader = threading.Thread(target=commit_in_turn, args=(11, 2))
    loader.start()
    await asyncio.sleep(0.5)
    fired = await runners().fire()
    assert commit_done.is_set()  # fire() returned only once the commit had ended
    assert fired.run is not None
    assert (await fired.run.result()).outcome == "success"
    loader.join()


async def test_postgres_connection_is_checked_in_one_sentence(runners: Runners) -> None:
    """``check(connection=True)`` on PostgreSQL (building there: test_pipeline.py)."""
    import psycopg

    from tests.materialize_support import POSTGRES_DSN

    schema = f"afterload_dbt_{os.urandom(5).hex()}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as con:
        con.execute(f'CREATE SCHEMA "{schema}"')
        con.execute(
            f'CREATE TABLE "{schema}".orders (id BIGINT PRIMARY KEY, amount DOUBLE PRECISION,'
            " status TEXT)"
        )
        con.execute(f"INSERT INTO \"{schema}\".orders VALUES (1, 12.5, 'paid'), (3, 30, 'paid')")
    try:
        env = {"TEST_PG_SCHEMA": schema, "TEST_SOURCE_SCHEMA": schema}
        bad = runners(turns=False, env={**env, "TEST_PG_DBNAME": "nosuchdb"}, target="postgres")
        checked = await bad.check(connection=True)
        assert not checked.ok
        assert checked.message.startswith("dbt debug --connection failed: connection to server")
        assert checked.message.endswith('FATAL:  database "nosuchdb" does not exist')
    finally:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as con:
            con.execute(f'DROP SCHEMA "{schema}" CASCADE')
