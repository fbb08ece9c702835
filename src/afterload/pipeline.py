"""One materialization run, wired: config → destination → NDJSON driver → core → triggers.

The one place the parts meet, shared by the Python API (:func:`afterload.materialize`) and the
CLI (``afterload run``). It prints nothing and installs no signal handler: the caller brings a
:class:`~afterload.core.stopper.Stopper` and a progress display if it wants them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from afterload.clock import Clock
from afterload.config.load import LoadedConfig
from afterload.core.materializer import Commit, Materializer
from afterload.core.stopper import Stopper
from afterload.destinations.base import Destination
from afterload.destinations.factory import duckdb_path, open_shared
from afterload.ndjson.driver import NdjsonDriver
from afterload.ndjson.progress import Progress
from afterload.triggers.base import FireOutcome, RunEnd, TriggerAction
from afterload.triggers.dbt_cloud.action import DbtCloudAction
from afterload.triggers.dbt_core.action import DbtCoreAction, dbt_env
from afterload.triggers.dbt_core.locks import DuckDBTurns
from afterload.triggers.runner import TriggerThread

log = logging.getLogger("afterload.run")

DEFAULT_WAIT = 3600.0


@dataclass(frozen=True, slots=True)
class Report:
    """What one :func:`materialize` call did."""

    documents: int = 0
    """Documents stored (committed) by this call."""
    rows: int = 0
    """Rows written: upserts and deletes, after reduction by key."""
    transactions: int = 0
    rejected: int = 0
    """Bad lines sent to rejects files."""
    fires: tuple[FireOutcome, ...] = field(default=())
    """Every trigger fire of this call, in order."""
    waited: RunEnd | None = None
    """With ``wait``: how the run started at the end ended."""

    @property
    def runs(self) -> tuple[int, ...]:
        """Ids of the runs the triggers started."""
        return tuple(f.run_id for f in self.fires if f.started and f.run_id is not None)


def trigger_actions(loaded: LoadedConfig, *, clock: Clock | None = None) -> list[TriggerAction]:
    """The config's trigger kinds, each with its one client for the whole run."""
    actions: list[TriggerAction] = []
    if loaded.config.dbt_job_trigger is not None:
        actions.append(DbtCloudAction(loaded.config.dbt_job_trigger, clock=clock))
    if loaded.config.dbt_core_trigger is not None:
        actions.append(dbt_core_action(loaded))
    return actions


def dbt_core_action(loaded: LoadedConfig) -> DbtCoreAction:
    """The config's dbt Core trigger; on a DuckDB destination it takes turns with the commits."""

    config = loaded.config
    assert config.dbt_core_trigger is not None
    path = duckdb_path(config.destination, loaded.base_dir)
    destination = config.destination
    if path is not None:
        schema = destination.duckdb.schema_ if destination and destination.duckdb else "main"
    else:
        assert destination is not None and destination.postgres is not None
        schema = destination.postgres.schema_
    return DbtCoreAction(
        config.dbt_core_trigger,
        materialization=loaded.name,
        tables=[b.table for b in config.bindings],
        turns=DuckDBTurns(path) if path is not None else None,
        env=dbt_env(path, schema),
    )


def materialize(
    loaded: LoadedConfig,
    *,
    once: bool = True,
    wait: bool = False,
    timeout: float | None = None,
    clock: Clock | None = None,
    stopper: Stopper | None = None,
    progress: Progress | None = None,
) -> Report:
    """Run the materialization: ``once`` reads what is there and returns; otherwise follow the
    sources until ``stopper`` is asked to stop. Raises :class:`afterload.AfterloadError`."""
    actions = trigger_actions(loaded, clock=clock)
    triggers = TriggerThread(actions, clock=clock) if actions else None
    destination: Destination | None = None
    driver: NdjsonDriver | None = None
    try:
        # DuckDB is held only while committing, so readers and dbt can use it in between.
        path = duckdb_path(loaded.config.destination, loaded.base_dir)
        turns = DuckDBTurns(path) if path is not None else None
        destination = open_shared(loaded.config.destination, loaded.base_dir, turns=turns)
        if triggers is not None:
            triggers.check_access()
        core = Materializer(destination, loaded.name, clock=clock)
        if triggers is not None:
            notify = triggers.notify_commit
            windows = [a for a in actions if isinstance(a, DbtCoreAction)]

            def heard(commit: Commit) -> None:
                if commit.documents > 0:
                    for action in windows:
                        action.note_commit(commit.published_at)
                notify(commit.documents)

            core.listeners.append(heard)
        driver = NdjsonDriver(loaded, core, stopper=stopper, progress=progress)
        driver.open()
        if once:
            return _once(driver, core, triggers, wait=wait, timeout=timeout)
        if triggers is not None:
            # dbt Core on a destination nothing was ever committed to has nothing to cover
            # yet (its sources do not even exist): its first run waits for the first commit.
            fresh = [a for a in actions if isinstance(a, DbtCoreAction)]
            triggers.start(initial_fire=True, not_initially=fresh if not core.resumed_from else ())
        driver.run_follow()
        return _report(core, driver, triggers)
    finally:
        if driver is not None:
            driver.close()
        if destination is not None:
            destination.close()
        if triggers is not None:
            triggers.close()


def _once(
    driver: NdjsonDriver,
    core: Materializer,
    triggers: TriggerThread | None,
    *,
    wait: bool,
    timeout: float | None,
) -> Report:
    stored = driver.run_once()
    driver.close()
    if triggers is None:
        return _report(core, driver, None)
    if not stored:
        log.info("no documents were committed; the dbt job is not triggered")
        return _report(core, driver, triggers)
    outcomes = triggers.fire_now()
    waited = None
    for action, outcome in zip(triggers.actions, outcomes, strict=True):
        if not (outcome.started and outcome.run_id is not None):
            continue
        # dbt Core runs in our child process, which must not outlive us: always wait for it
        # (its end is logged); --wait makes its result the exit code, as for dbt Cloud.
        if wait or isinstance(action, DbtCoreAction):
            end = triggers.call(action.wait(outcome, timeout or DEFAULT_WAIT))
            log.log(logging.INFO if end.result == "success" else logging.WARNING, "%s", end.message)
            if wait:
                waited = end
    return _report(core, driver, triggers, waited=waited)


def _report(
    core: Materializer,
    driver: NdjsonDriver,
    triggers: TriggerThread | None,
    *,
    waited: RunEnd | None = None,
) -> Report:
    fires: list[FireOutcome] = []
    for trigger in triggers.triggers if triggers is not None else ():
        fires.extend(trigger.outcomes)
    return Report(
        documents=core.documents,
        rows=core.rows,
        transactions=core.transactions,
        rejected=driver.rejected,
        fires=tuple(fires),
        waited=waited,
    )
