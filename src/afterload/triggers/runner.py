"""The trigger's async shell: the schedule's background task.

:class:`JobTrigger` runs the pure schedule (:mod:`.schedule`) on an event loop and fires its
action when the schedule says so; :mod:`.thread` gives that loop a thread of its own.
``notify_commit`` is the only call on the commit path, and it returns at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from afterload.clock import Clock, SystemClock
from afterload.triggers.base import FireOutcome, RunEnd, TriggerAction
from afterload.triggers.ledger import FollowsRuns, LedgerRecorder
from afterload.triggers.memory import Mark, TriggerMemory
from afterload.triggers.schedule import RETRY_FLOOR, TriggerCore

log = logging.getLogger("afterload.trigger")


class JobTrigger:
    """Runs the schedule in a background task; :meth:`notify_commit` never waits on the target.

    Drives one :class:`~afterload.triggers.base.TriggerAction` of any kind; the action's
    owner closes it.
    """

    def __init__(
        self,
        action: TriggerAction,
        *,
        clock: Clock | None = None,
        retry_floor: float = RETRY_FLOOR,
        memory: TriggerMemory | None = None,
        recorder: LedgerRecorder | None = None,
    ) -> None:
        self.action = action
        self.clock = clock or SystemClock()
        self.core = TriggerCore(action.interval, retry_floor=retry_floor)
        self.outcomes: list[FireOutcome] = []
        self.memory = memory
        """What this trigger owes, committed with the data (None: kept in memory only)."""
        self.recorder = recorder
        """Writes each decision to the run ledger and follows started runs (None: no ledger)."""
        self.observers: list[Callable[[JobTrigger, FireOutcome], None]] = []
        """Told of every fire's outcome (metrics)."""
        self._follower: asyncio.Task[None] | None = None
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
        # Kinds whose runs must succeed to cover data (dbt Core) are watched to their end.
        self._confirms = bool(getattr(action, "confirms", False))
        self._watching: set[asyncio.Task[None]] = set()
        self._covers: dict[int, Mark] = {}
        """What each watched run (dbt Core) will cover once it succeeds."""

    def __repr__(self) -> str:
        return f"JobTrigger({self.action!r})"

    async def start(self, *, initial_fire: bool = True) -> None:
        """Start the background task; ``initial_fire`` schedules the seed's start-up fire."""
        self._loop = asyncio.get_running_loop()
        if initial_fire:
            self.core.start(self.clock.monotonic())
        self._task = asyncio.create_task(self._run(), name=f"afterload-trigger {self.action.label}")
        self.start_following()

    def start_following(self) -> None:
        """Follow started runs to their end in the background (when there is a ledger)."""
        if self.recorder is None or self._follower is not None:
            return
        if not isinstance(self.action, FollowsRuns):
            if self._confirms:
                self._follower = asyncio.create_task(
                    self.recorder.close_earlier(), name=f"afterload-close {self.action.label}"
                )
            return
        recorder, action = self.recorder, self.action

        async def follow() -> None:
            await recorder.resume()
            await recorder.follow(action, lambda: self.core.stopped)

        self._follower = asyncio.create_task(follow(), name=f"afterload-follow {self.action.label}")

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
        """One fire now, outside the schedule (``run --once`` at its end)."""
        async with self._firing:
            if self._confirms and self.recorder is not None:
                await self.recorder.close_earlier()
            covering = self.memory.covering() if self.memory is not None else None
            outcome = await self.action.fire()
            await self._remember(outcome, covering)
        self._record(outcome)
        return outcome

    async def _remember(self, outcome: FireOutcome, covering: Mark | None) -> None:
        """The run now covers ``covering``: say so in memory, then in the ledger."""
        # A rerun from the point of failure covers nothing new: the data stays owed. A run
        # that covers only once it succeeds (dbt Core) is marked by its watcher instead.
        if outcome.started and outcome.covers and covering is not None:
            if self._confirms and outcome.run_id is not None:
                self._covers[outcome.run_id] = covering
            elif self.memory is not None:
                self.memory.covered(covering, outcome.run_id)
        if self.recorder is not None:
            await self.recorder.record(outcome, covering)

    async def stop(self, grace: float = 10.0) -> None:
        """Cancel what is scheduled; give a request in flight up to ``grace`` seconds."""
        self.core.stop()
        with self._inbox:
            self._idle = False  # later reports must not wake a loop that may be gone
        self._wake.set()
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            # One last look, so runs that ended meanwhile have their end in the ledger.
            if self.recorder is not None and isinstance(self.action, FollowsRuns):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self.recorder.look(self.action.run_state), timeout=min(grace, 5.0)
                    )
        if self._watching:
            # A run that just ended (dbt Core) gets its end into memory and the ledger; one
            # still going is interrupted by the action's close, after this.
            await asyncio.wait(set(self._watching), timeout=min(grace, 1.0))
        for watcher in list(self._watching):
            watcher.cancel()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=grace)
            except TimeoutError:
                log.warning("%s: stopped with a request in flight", self.action.label)
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task

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
                # The moment the schedule counts from (a run may start later: dbt Core waits
                # for its DuckDB turn), logged so that the spacing can be seen.
                log.debug("%s: firing", self.action.label)
                async with self._firing:
                    covering = self.memory.covering() if self.memory is not None else None
                    try:
                        outcome = await self.action.fire()
                    except Exception as exc:  # a bug must not end the trigger silently
                        log.exception("%s: unexpected error", self.action.label)
                        outcome = FireOutcome("failed", f"failed ({type(exc).__name__})")
                    await self._remember(outcome, covering)
                confirm = None
                if self._confirms and outcome.started and outcome.run_id is not None:
                    confirm = outcome.run_id
                    self._watch_run(outcome)
                covered = outcome.started and outcome.covers
                now = self.clock.monotonic()
                self.core.finish(now, started=covered, confirm=confirm)
                self._record(outcome)
                continue
            with self._inbox:
                if self._reported:
                    continue
                self._wake.clear()
                self._idle = self.core.due_at is None
            due = self.core.due_at
            await self._sleep_or_wake(None if due is None else due - now)

    def _watch_run(self, outcome: FireOutcome) -> None:
        """Follow a started run to its end: only a success covers the data it was fired for."""
        key = outcome.run_id
        assert key is not None

        async def watch() -> None:
            try:
                end = await self.action.wait(outcome, float("inf"))
            except Exception as exc:  # a bug must not leave the data claimed forever
                log.exception("%s: unexpected error", self.action.label)
                end = RunEnd("error", f"failed ({type(exc).__name__})")
            success = end.result == "success"
            await self._ended(key, end)
            self.core.run_ended(self.clock.monotonic(), key, success=success)
            self._wake.set()
            if success:
                log.info("%s: %s", self.action.label, end.message)
                return
            due = self.core.due_at
            later = ""
            if due is not None:
                wait = max(0.0, due - self.clock.monotonic())
                at = (self.clock.wall() + timedelta(seconds=wait)).astimezone()
                later = f"; the data stays pending, next try at {at.strftime('%H:%M:%S')}"
            log.warning("%s: %s%s", self.action.label, end.message, later)

        task = asyncio.create_task(watch(), name=f"afterload-watch {self.action.label} {key}")
        self._watching.add(task)
        task.add_done_callback(self._watching.discard)

    async def run_ended(self, outcome: FireOutcome, end: RunEnd) -> None:
        """A run that covers data once it succeeds, waited for by the caller (``run --once``),
        ended: mark what it covers, and write its end to the ledger."""
        if self._confirms and outcome.run_id is not None:
            await self._ended(outcome.run_id, end)

    async def _ended(self, key: int, end: RunEnd) -> None:
        covering = self._covers.pop(key, None)
        if end.result == "success" and self.memory is not None and covering is not None:
            self.memory.covered(covering, key)
            if self.recorder is None:
                self.memory.succeeded(covering)
        if self.recorder is not None:
            status = end.result if end.result in ("success", "cancelled") else "error"
            await self.recorder.ended(key, status, self.clock.wall())

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
        for observer in self.observers:
            observer(self, outcome)
        label = self.action.label
        if outcome.kind == "started" or self.core.due_at is None:
            level = logging.INFO if outcome.kind != "failed" else logging.WARNING
            log.log(level, "%s: %s", label, outcome.message)
            return
        wait = self.core.due_at - self.clock.monotonic()
        at = (self.clock.wall() + timedelta(seconds=max(0.0, wait))).astimezone()
        level = logging.INFO if outcome.kind == "skipped" else logging.WARNING
        log.log(level, "%s: %s; next try at %s", label, outcome.message, at.strftime("%H:%M:%S"))
