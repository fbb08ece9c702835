"""The dbt Cloud job trigger: when to fire (a pure core) and how (a thin async shell).

Timing follows the original connector: fire once at start, then after each commit that
stored documents, at ``max(now, last fire + interval)``, with at most one fire scheduled at a
time. Unlike the original it never blocks the committer, never fires for an empty commit, and
keeps data *pending* until a run created after it exists: a fire skipped because a run is
active, or one that failed after its retries, is tried again an interval later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from afterload.clock import Clock, SystemClock
from afterload.config import DbtJobTrigger
from afterload.dbt.cloud import DbtCloudClient, DbtCloudError, Job, Run

log = logging.getLogger("afterload.trigger")

#: After a skipped or failed fire, wait at least this long even when ``interval`` is shorter,
#: so a ``0s`` interval never turns into a busy loop against dbt Cloud.
RETRY_FLOOR = 10.0


@dataclass
class TriggerCore:
    """The decision logic, with time passed in: no I/O, so property tests can drive it.

    ``commits`` counts data commits (the start-up fire counts as one: data committed by an
    earlier process may not have a run yet); ``covered`` is the count a successful fire has
    covered. Data is pending while ``commits > covered``.
    """

    interval: float
    retry_floor: float = RETRY_FLOOR
    commits: int = 0
    covered: int = 0
    last_fire: float | None = None
    due_at: float | None = None
    in_flight: int | None = None
    stopped: bool = False

    @property
    def pending(self) -> bool:
        return self.commits > self.covered

    def start(self, now: float) -> None:
        """The seed's initial fire: due at once."""
        self.commits += 1
        self._schedule(now)

    def commit(self, now: float, documents: int) -> None:
        """A commit that stored ``documents``; an empty one changes nothing."""
        if documents <= 0 or self.stopped:
            return
        self.commits += 1
        self._schedule(now)

    def begin(self, now: float) -> bool:
        """Whether a fire starts now; if so it covers every commit counted so far."""
        if self.stopped or self.in_flight is not None or self.due_at is None:
            return False
        if now < self.due_at:
            return False
        self.in_flight = self.commits
        self.last_fire = now
        self.due_at = None
        return True

    def finish(self, now: float, *, started: bool) -> None:
        """The fire ended; ``started`` means a run now exists that was created after it began."""
        if self.in_flight is None:
            raise RuntimeError("finish() without begin()")
        if started:
            self.covered = max(self.covered, self.in_flight)
        self.in_flight = None
        if self.stopped or not self.pending:
            return
        assert self.last_fire is not None
        gap = self.interval if started else max(self.interval, self.retry_floor)
        self.due_at = max(now, self.last_fire + gap)

    def stop(self) -> None:
        self.stopped = True
        self.due_at = None

    def _schedule(self, now: float) -> None:
        if self.in_flight is not None or self.due_at is not None:
            return  # the running fire's finish(), or the scheduled one, takes care of it
        earliest = now if self.last_fire is None else self.last_fire + self.interval
        self.due_at = max(now, earliest)


@dataclass(frozen=True, slots=True)
class FireOutcome:
    """What one fire did, and why, in words fit for a log line."""

    kind: Literal["started", "skipped", "failed"]
    message: str
    run_id: int | None = None
    cancelled: tuple[int, ...] = ()
    active: tuple[int, ...] = field(default=())
    run: Run | None = field(default=None, compare=False)

    @property
    def started(self) -> bool:
        return self.kind == "started"


async def fire_once(client: DbtCloudClient, settings: DbtJobTrigger) -> FireOutcome:
    """Apply the mode to the job's active runs and start one run when the mode says so."""
    cancelled: list[int] = []
    try:
        if settings.mode != "ignore":
            active = await client.list_active_runs()
            if active and settings.mode == "skip":
                ids = tuple(r.id for r in active)
                states = ", ".join(f"run {r.id} is {r.status_humanized.lower()}" for r in active)
                return FireOutcome("skipped", f"skipped, {states}", active=ids)
            for run in active:
                await _cancel(client, run)
                cancelled.append(run.id)
        run = await client.trigger_run(settings.cause)
    except DbtCloudError as exc:
        done = f" after cancelling runs {cancelled}" if cancelled else ""
        return FireOutcome("failed", f"failed{done} ({exc})", cancelled=tuple(cancelled))
    text = f"replaced runs {cancelled} with {run.id}" if cancelled else f"started run {run.id}"
    return FireOutcome("started", text, run_id=run.id, cancelled=tuple(cancelled), run=run)


async def _cancel(client: DbtCloudClient, run: Run) -> None:
    """Cancel a run; one that finished in the meantime is not an error."""
    try:
        await client.cancel_run(run.id)
    except DbtCloudError as exc:
        if exc.status_code in (401, 403):
            raise
        current = await client.get_run(run.id)
        if current.is_active:
            raise DbtCloudError(
                f"cannot cancel run {run.id}: {exc}", fatal=exc.fatal, status_code=exc.status_code
            ) from None


async def check_access(settings: DbtJobTrigger, *, client: DbtCloudClient | None = None) -> Job:
    """Read the job, which proves the URL, the key, the account and the job id together."""
    if client is not None:
        return await client.get_job()
    async with DbtCloudClient(settings) as own:
        return await own.get_job()


class JobTrigger:
    """Runs the core in a background task; :meth:`notify_commit` never waits on dbt Cloud."""

    def __init__(
        self,
        settings: DbtJobTrigger,
        *,
        clock: Clock | None = None,
        client: DbtCloudClient | None = None,
        retry_floor: float = RETRY_FLOOR,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self._own_client = client is None
        self.client = client or DbtCloudClient(settings, clock=self.clock)
        self.core = TriggerCore(settings.interval.total_seconds(), retry_floor=retry_floor)
        self.outcomes: list[FireOutcome] = []
        self._firing = asyncio.Lock()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        # Commits reported from the committer's thread, not yet seen by the core. The loop is
        # woken only when it sleeps with nothing scheduled: while a fire is in flight or due,
        # it picks them up on its own, so a busy commit loop never pays for a thread switch.
        self._inbox = threading.Lock()
        self._reported = 0
        self._idle = False

    def __repr__(self) -> str:
        s = self.settings
        return f"JobTrigger(job {s.job_id} in account {s.account_id}, mode={s.mode})"

    async def start(self, *, initial_fire: bool = True) -> None:
        """Start the background task; ``initial_fire`` schedules the seed's start-up fire."""
        self._loop = asyncio.get_running_loop()
        if initial_fire:
            self.core.start(self.clock.monotonic())
        self._task = asyncio.create_task(self._run(), name="afterload-dbt-trigger")

    def notify_commit(self, documents: int) -> None:
        """Tell the trigger a commit stored ``documents``; returns at once, from any thread."""
        if documents <= 0:
            return
        with self._inbox:
            self._reported += 1
            wake, self._idle = self._idle, False
        if wake and self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def fire_now(self) -> FireOutcome:
        """One fire now, honouring mode and cause (``afterload trigger``, ``run --once``)."""
        async with self._firing:
            outcome = await fire_once(self.client, self.settings)
        self._record(outcome)
        return outcome

    async def stop(self, grace: float = 10.0) -> None:
        """Cancel what is scheduled; give a request in flight up to ``grace`` seconds."""
        self.core.stop()
        with self._inbox:
            self._idle = False  # later reports must not wake a loop that may be gone
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=grace)
            except TimeoutError:
                log.warning("dbt job %d: stopped with a request in flight", self.settings.job_id)
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._own_client:
            await self.client.aclose()

    # -- the background task ---------------------------------------------------------------

    def _collect(self) -> None:
        """Hand the commits reported since the last look to the core."""
        with self._inbox:
            count, self._reported = self._reported, 0
        now = self.clock.monotonic()
        for _ in range(count):
            self.core.commit(now, 1)

    async def _run(self) -> None:
        while not self.core.stopped:
            self._collect()
            now = self.clock.monotonic()
            if self.core.begin(now):
                async with self._firing:
                    try:
                        outcome = await fire_once(self.client, self.settings)
                    except Exception as exc:  # a bug must not end the trigger silently
                        log.exception("dbt job %d: unexpected error", self.settings.job_id)
                        outcome = FireOutcome("failed", f"failed ({type(exc).__name__})")
                self.core.finish(self.clock.monotonic(), started=outcome.started)
                self._record(outcome)
                continue
            with self._inbox:
                if self._reported:
                    continue
                self._wake.clear()
                self._idle = self.core.due_at is None
            due = self.core.due_at
            await self._sleep_or_wake(None if due is None else due - now)

    async def _sleep_or_wake(self, seconds: float | None) -> None:
        waiter = asyncio.ensure_future(self._wake.wait())
        if seconds is None:
            await waiter
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (waiter, sleeper):
                t.cancel()

    def _record(self, outcome: FireOutcome) -> None:
        self.outcomes.append(outcome)
        job = self.settings.job_id
        if outcome.kind == "started" or self.core.due_at is None:
            level = logging.INFO if outcome.kind != "failed" else logging.WARNING
            log.log(level, "dbt job %d: %s", job, outcome.message)
            return
        wait = self.core.due_at - self.clock.monotonic()
        at = (self.clock.wall() + timedelta(seconds=max(0.0, wait))).astimezone()
        level = logging.INFO if outcome.kind == "skipped" else logging.WARNING
        log.log(
            level, "dbt job %d: %s; next try at %s", job, outcome.message, at.strftime("%H:%M:%S")
        )
