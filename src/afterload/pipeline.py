"""One materialization run, wired: config → destination → NDJSON driver → core → triggers.

The one place the parts meet, shared by the Python API (:func:`afterload.materialize`) and the
CLI (``afterload run``). It prints nothing and installs no signal handler: the caller brings a
:class:`~afterload.core.stopper.Stopper` and a progress display if it wants them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from afterload.clock import Clock
from afterload.config.load import LoadedConfig
from afterload.core.materializer import Materializer
from afterload.core.stopper import Stopper
from afterload.destinations.base import Destination
from afterload.destinations.factory import open_destination
from afterload.ndjson.driver import NdjsonDriver
from afterload.ndjson.progress import Progress
from afterload.triggers.base import FireOutcome, RunEnd, TriggerAction
from afterload.triggers.dbt_cloud.action import DbtCloudAction
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
    actions: list[TriggerAction] = []
    if loaded.config.dbt_job_trigger is not None:
        actions.append(DbtCloudAction(loaded.config.dbt_job_trigger, clock=clock))
    return actions


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
    started = time.monotonic()
    actions = trigger_actions(loaded, clock=clock)
    triggers = TriggerThread(actions, clock=clock) if actions else None
    destination: Destination | None = None
    driver: NdjsonDriver | None = None
    try:
        destination = open_destination(loaded.config.destination, loaded.base_dir)
        if triggers is not None:
            triggers.check_access()
        core = Materializer(destination, loaded.name, clock=clock)
        if triggers is not None:
            notify = triggers.notify_commit
            core.listeners.append(lambda commit: notify(commit.documents))
        driver = NdjsonDriver(loaded, core, stopper=stopper, progress=progress)
        driver.open()
        if once:
            return _once(driver, core, triggers, wait=wait, timeout=timeout, started=started)
        if triggers is not None:
            triggers.start(initial_fire=True)
        driver.run_follow()
        return _report(core, driver, triggers, seconds=time.monotonic() - started)
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
    started: float,
) -> Report:
    stored = driver.run_once()
    driver.close()
    seconds = time.monotonic() - started
    if triggers is None:
        return _report(core, driver, None, seconds=seconds)
    if not stored:
        log.info("no documents were committed; the dbt job is not triggered")
        return _report(core, driver, triggers, seconds=seconds)
    outcomes = triggers.fire_now()
    waited = None
    if wait:
        for action, outcome in zip(triggers.actions, outcomes, strict=True):
            if outcome.started and outcome.run_id is not None:
                waited = triggers.call(action.wait(outcome, timeout or DEFAULT_WAIT))
    return _report(core, driver, triggers, waited=waited, seconds=seconds)


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
