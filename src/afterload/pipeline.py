"""One materialization run, wired: config → destination → NDJSON driver → core → triggers.

The one place the parts meet, shared by the Python API (:func:`afterload.materialize`) and the
CLI (``afterload run``). It prints nothing and installs no signal handler: the caller brings a
:class:`~afterload.core.stopper.Stopper` and a progress display if it wants them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from afterload.core.materializer import Materializer
from afterload.destinations.factory import duckdb_path, open_shared
from afterload.ndjson.driver import NdjsonDriver
from afterload.preflight import require_runnable
from afterload.triggers.base import FOLLOW_EVERY, FireOutcome, RunEnd, TriggerAction
from afterload.triggers.dbt_core.locks import DuckDBTurns

# Each trigger kind (dbt Cloud, dbt Core, webhooks) and the trigger thread are imported only
# when the config has such a trigger: a run without one does not pay for httpx, stamina, the
# dbt child process or the Handlebars templates (ARCHITECTURE.md, start-up).
if TYPE_CHECKING:
    from afterload.clock import Clock
    from afterload.config.load import LoadedConfig
    from afterload.core.materializer import Commit
    from afterload.core.stopper import Stopper
    from afterload.destinations.base import Destination
    from afterload.durable_triggers import DurableTriggers
    from afterload.metrics import RunMetrics
    from afterload.ndjson.progress import Progress
    from afterload.triggers.dbt_cloud.action import DbtCloudAction
    from afterload.triggers.dbt_core.action import DbtCoreAction
    from afterload.triggers.thread import TriggerThread
    from afterload.triggers.webhook.runner import WebhookRunner

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
    bytes: int = 0
    """Bytes of input committed by this call."""
    seconds: float = 0.0
    """How long reading and committing took (the trigger's fire and ``wait`` excluded)."""
    fires: tuple[FireOutcome, ...] = field(default=())
    """Every trigger fire of this call, in order."""
    waited: RunEnd | None = None
    """With ``wait``: how the run started at the end ended."""

    def counts(self) -> dict[str, int | float]:
        """The figures of :meth:`summary`, for machine-readable logs."""
        return {
            "documents": self.documents,
            "rows": self.rows,
            "bytes": self.bytes,
            "transactions": self.transactions,
            "rejected": self.rejected,
            "seconds": round(self.seconds, 3),
            "documents_per_second": round(self.rate),
        }

    @property
    def rate(self) -> float:
        return self.documents / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line for the end of ``run --once``: what was loaded, how fast, what was refused."""
        return (
            f"loaded {self.documents:,} documents ({_size(self.bytes)}) into {self.rows:,} rows "
            f"in {self.transactions:,} transaction{'s' if self.transactions != 1 else ''}, "
            f"{self.seconds:.2f}s, {self.rate:,.0f} documents/s; {self.rejected:,} rejected"
        )

    @property
    def runs(self) -> tuple[int, ...]:
        """Ids of the runs the triggers started."""
        return tuple(f.run_id for f in self.fires if f.started and f.run_id is not None)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def trigger_actions(loaded: LoadedConfig, *, clock: Clock | None = None) -> list[TriggerAction]:
    """The config's trigger kinds, each with its one client for the whole run."""
    cloud, core = _actions_by_kind(loaded, clock=clock)
    return [*cloud, *core]


def _actions_by_kind(
    loaded: LoadedConfig, *, clock: Clock | None
) -> tuple[list[DbtCloudAction], list[DbtCoreAction]]:
    """The dbt Cloud and the dbt Core actions; each kind's module is imported only if the
    config has that kind."""
    if loaded.config.trigger_cleared:
        log.info("dbt_job_trigger is cleared (every field empty): no job will be triggered")
    cloud: list[DbtCloudAction] = []
    if jobs := loaded.config.dbt_jobs():
        from afterload.triggers.dbt_cloud.action import DbtCloudAction

        tables = [binding.table for binding in loaded.config.bindings]
        cloud = [DbtCloudAction(settings, clock=clock, tables=tables) for settings in jobs]
    core = [dbt_core_action(loaded)] if loaded.config.dbt_core_trigger is not None else []
    return cloud, core


def dbt_core_action(loaded: LoadedConfig) -> DbtCoreAction:
    """The config's dbt Core trigger; on a DuckDB destination it takes turns with the commits."""
    from afterload.triggers.dbt_core.action import DbtCoreAction, dbt_env

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


def webhook_runners(loaded: LoadedConfig, *, clock: Clock | None = None) -> list[WebhookRunner]:
    """One runner per webhook of the config's ``triggers:`` block."""
    block = loaded.config.triggers
    if block is None:
        return []
    from afterload.triggers.webhook.runner import WebhookRunner

    interval = block.interval.total_seconds() if block.interval is not None else 0.0
    return [
        WebhookRunner(name, hook, interval=interval, materialization=loaded.name, clock=clock)
        for name, hook in block.named().items()
    ]


def materialize(
    loaded: LoadedConfig,
    *,
    once: bool = True,
    wait: bool = False,
    timeout: float | None = None,
    clock: Clock | None = None,
    stopper: Stopper | None = None,
    progress: Progress | None = None,
    metrics: RunMetrics | None = None,
    follow_every: float = FOLLOW_EVERY,
) -> Report:
    """Run the materialization: ``once`` reads what is there and returns; otherwise follow the
    sources until ``stopper`` is asked to stop. Raises :class:`afterload.AfterloadError`;
    what ``afterload check`` would refuse is refused first, in its words.

    ``metrics`` (see :mod:`afterload.metrics`) hears every commit and trigger decision;
    ``follow_every`` is how often runs in the ledger are looked at until they end."""
    require_runnable(loaded)
    started = time.monotonic()
    cloud, dbt_core = _actions_by_kind(loaded, clock=clock)
    actions: list[TriggerAction] = [*cloud, *dbt_core]
    webhooks = webhook_runners(loaded, clock=clock)
    triggers = None
    if actions or webhooks:
        from afterload.triggers.thread import TriggerThread

        triggers = TriggerThread(actions, clock=clock, background=webhooks)
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
        durable = _wire(core, destination, cloud, dbt_core, triggers, webhooks, clock, follow_every)
        if metrics is not None:
            core.listeners.append(metrics.committed)
        driver = NdjsonDriver(loaded, core, stopper=stopper, progress=progress)
        if metrics is not None:
            opened = driver
            metrics.rejects = lambda: opened.rejected
        driver.open()
        if metrics is not None and triggers is not None:
            metrics.watch(triggers.prepare())
        if once:
            return _once(
                driver,
                core,
                triggers,
                durable,
                dbt_core,
                wait=wait,
                timeout=timeout,
                started=started,
            )
        if triggers is not None:
            assert durable is not None
            # dbt Core on a destination nothing was ever committed to has nothing to cover
            # yet (its sources do not even exist): its first run waits for the first commit.
            triggers.start(
                initial_fire=durable.initial_fire,
                not_initially=dbt_core if not core.resumed_from else (),
            )
        driver.run_follow()
        _stop_webhooks(driver, triggers)
        return _report(core, driver, triggers, seconds=time.monotonic() - started)
    finally:
        if driver is not None:
            driver.close()
        try:
            if triggers is not None:
                triggers.close()  # before the destination: a fire in flight records its run
        finally:
            if destination is not None:
                destination.close()


def _wire(
    core: Materializer,
    destination: Destination,
    cloud: list[DbtCloudAction],
    dbt_core: list[DbtCoreAction],
    triggers: TriggerThread | None,
    webhooks: list[WebhookRunner],
    clock: Clock | None,
    follow_every: float,
) -> DurableTriggers | None:
    """The triggers' durable memory and ledger, and their commit listeners."""
    durable: DurableTriggers | None = None
    if triggers is not None:
        from afterload.durable_triggers import DurableTriggers

        durable = DurableTriggers(
            triggers.actions, core, destination, clock=clock, follow_every=follow_every
        )
        triggers.bind = durable.bind
        if dbt_core:

            def heard(commit: Commit) -> None:
                if commit.documents > 0:
                    for action in dbt_core:
                        action.note_commit(commit.published_at)

            core.listeners.append(heard)
    _listen(core, cloud, triggers, webhooks)
    return durable


def _listen(
    core: Materializer,
    cloud: list[DbtCloudAction],
    triggers: TriggerThread | None,
    webhooks: list[WebhookRunner],
) -> None:
    """Hook the triggers to the core: listeners after each commit, webhooks' state into it."""
    for action in cloud:  # tables first: the schedule counts next
        core.listeners.append(action.on_commit)
    if triggers is not None:
        notify = triggers.notify_commit
        core.listeners.append(lambda commit: notify(commit.documents))
    for webhook in webhooks:
        core.state_sources.append(webhook)
        core.listeners.append(webhook.on_commit)


def _stop_webhooks(driver: NdjsonDriver, triggers: TriggerThread | None) -> None:
    """A clean stop records the deliveries that ended, so the next start does not send them
    again (after a SIGKILL it may: delivery is at least once)."""
    if triggers is not None and triggers.background:
        triggers.stop_background()
        driver.record_trigger_states()


def _once(
    driver: NdjsonDriver,
    core: Materializer,
    triggers: TriggerThread | None,
    durable: DurableTriggers | None,
    dbt_core: list[DbtCoreAction],
    *,
    wait: bool,
    timeout: float | None,
    started: float,
) -> Report:
    stored = driver.run_once()
    if triggers is not None and triggers.background:
        # Webhooks deliver what is due (a window an earlier run left pending too), and the
        # outcome is committed with the checkpoint, so the next run does not send it again.
        triggers.deliver_due()
        driver.record_trigger_states()
    driver.close()
    seconds = time.monotonic() - started
    if triggers is None:
        return _report(core, driver, None, seconds=seconds)
    if not stored and durable is not None:
        # ``on_start: pending``: data an earlier run committed and no run covers is owed too,
        # and so it is for dbt Core, whose runs cover data only once they succeed (a failed
        # or killed build leaves it owed: the next ``--once`` builds it).
        owed = [
            a
            for a in triggers.actions
            if getattr(a, "on_start", "always") == "pending" or getattr(a, "confirms", False)
        ]
        if any(durable.pending(a) for a in owed):
            stored = 1
    if not stored:
        if triggers.actions:
            log.info("no documents were committed; the dbt job is not triggered")
        return _report(core, driver, triggers, seconds=seconds)
    if not triggers.actions:
        return _report(core, driver, triggers, seconds=seconds)
    waited = _fire_and_wait(triggers, dbt_core, wait=wait, timeout=timeout)
    return _report(core, driver, triggers, waited=waited, seconds=seconds)


def _fire_and_wait(
    triggers: TriggerThread, dbt_core: list[DbtCoreAction], *, wait: bool, timeout: float | None
) -> RunEnd | None:
    """Fire every trigger once; wait for the runs with ``wait`` (dbt Core always)."""
    waited = None
    outcomes = triggers.fire_now()
    for trigger, outcome in zip(triggers.triggers, outcomes, strict=True):
        action = trigger.action
        if not (outcome.started and outcome.run_id is not None):
            continue
        # dbt Core runs in our child process, which must not outlive us: always wait for it
        # (its end is logged); --wait makes its result the exit code, as for dbt Cloud.
        if wait or any(action is a for a in dbt_core):
            end = triggers.call(action.wait(outcome, timeout or DEFAULT_WAIT))
            triggers.call(trigger.run_ended(outcome, end))  # dbt Core: covers data if success
            log.log(logging.INFO if end.result == "success" else logging.WARNING, "%s", end.message)
            if wait:
                waited = end
    if wait:
        triggers.look_at_runs()
    return waited


def _report(
    core: Materializer,
    driver: NdjsonDriver,
    triggers: TriggerThread | None,
    *,
    waited: RunEnd | None = None,
    seconds: float,
) -> Report:
    fires: list[FireOutcome] = []
    for trigger in triggers.triggers if triggers is not None else ():
        fires.extend(trigger.outcomes)
    for other in triggers.background if triggers is not None else ():
        fires.extend(getattr(other, "outcomes", ()))
    return Report(
        documents=core.documents,
        rows=core.rows,
        transactions=core.transactions,
        rejected=driver.rejected,
        bytes=driver.committed_bytes,
        seconds=seconds,
        fires=tuple(fires),
        waited=waited,
    )
