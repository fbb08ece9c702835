"""The trigger's async shell: the schedule's background task, and the thread it lives in.

:class:`JobTrigger` runs the pure schedule (:mod:`.schedule`) on an event loop and fires its
action when the schedule says so; :class:`TriggerThread` gives that loop a thread of its own,
so a long commit never delays a fire and a slow or hung target never delays a commit.
``notify_commit`` is the only call on the commit path, and it returns at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from afterload.clock import Clock, SystemClock
from afterload.errors import AfterloadError
from afterload.triggers.base import FireOutcome, RunEnd, TriggerAction
from afterload.triggers.ledger import FollowsRuns, LedgerRecorder
from afterload.triggers.memory import Mark, TriggerMemory
from afterload.triggers.schedule import RETRY_FLOOR, TriggerCore

log = logging.getLogger("afterload.trigger")

T = TypeVar("T")


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
            covering = self.memory.covering() if self.memory is not None else None
            outcome = await self.action.fire()
            await self._remember(outcome, covering)
        self._record(outcome)
        return outcome

    async def _remember(self, outcome: FireOutcome, covering: Mark | None) -> None:
        """The run now covers ``covering``: say so in memory, then in the ledger."""
        # A rerun from the point of failure covers nothing new: the data stays owed.
        if self.memory is not None and outcome.started and outcome.covers and covering is not None:
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


class BackgroundTrigger(Protocol):
    """A trigger with its own background task on the triggers' loop (a webhook runner)."""

    label: str

    async def start(self) -> None: ...

    async def deliver_due(self) -> list[FireOutcome]: ...

    async def stop(self, grace: float = 10.0) -> None: ...


class TriggerThread:
    """The triggers of one run on an asyncio loop of their own, driven from the data path.

    Owns the actions it is given: :meth:`close` closes them (and so their clients).
    """

    def __init__(
        self,
        actions: Sequence[TriggerAction],
        *,
        clock: Clock | None = None,
        background: Sequence[BackgroundTrigger] = (),
    ) -> None:
        self.actions = list(actions)
        self.background = list(background)
        """Webhooks: started and stopped with the schedule, delivering on their own."""
        self._clock = clock
        self.triggers: list[JobTrigger] = []
        self.bind: Callable[[TriggerAction], tuple[TriggerMemory | None, LedgerRecorder | None]]
        self.bind = lambda action: (None, None)
        """Gives each trigger its durable memory and ledger (set before the triggers start)."""
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="afterload-trigger", daemon=True
        )
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the triggers' loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def _ensure_triggers(self) -> list[JobTrigger]:
        if not self.triggers:

            async def make() -> list[JobTrigger]:
                made = []
                for action in self.actions:
                    memory, recorder = self.bind(action)
                    made.append(
                        JobTrigger(action, clock=self._clock, memory=memory, recorder=recorder)
                    )
                return made

            self.triggers = self.call(make())
        return self.triggers

    def prepare(self) -> list[JobTrigger]:
        """The triggers, made now if not yet (each bound to its memory and ledger)."""
        return self._ensure_triggers()

    def start(
        self,
        *,
        initial_fire: bool | Callable[[JobTrigger], bool],
        not_initially: Sequence[TriggerAction] = (),
    ) -> None:
        """Start every trigger's background task (the follow loop); ``initial_fire`` may
        decide per trigger (``on_start: pending``); the actions in ``not_initially`` make no
        start-up fire."""

        triggers = self._ensure_triggers()

        async def start_all() -> None:
            for trigger in triggers:
                fire = initial_fire(trigger) if callable(initial_fire) else initial_fire
                first = fire and not any(trigger.action is a for a in not_initially)
                await trigger.start(initial_fire=first)
            for other in self.background:
                await other.start()

        self.call(start_all())

    def check_access(self) -> None:
        """Fatal answers (bad key, unknown job) stop the run; others are only logged."""
        for action in self.actions:
            try:
                self.call(action.check())
            except AfterloadError as exc:
                if getattr(exc, "fatal", True):
                    raise
                log.warning("%s is not reachable now (%s); materializing anyway", action.label, exc)

    def notify_commit(self, documents: int) -> None:
        """A commit stored ``documents``: returns at once (the listener the core calls)."""
        for trigger in self.triggers:
            trigger.notify_commit(documents)

    def fire_now(self) -> list[FireOutcome]:
        """One fire of each action now (``run --once`` after it committed data)."""

        triggers = self._ensure_triggers()

        async def fire_all() -> list[FireOutcome]:
            return [await t.fire_now() for t in triggers]

        return self.call(fire_all())

    def deliver_due(self) -> list[FireOutcome]:
        """Each background trigger delivers what is due now (``run --once`` at its end)."""

        async def deliver_all() -> list[FireOutcome]:
            outcomes: list[FireOutcome] = []
            for other in self.background:
                outcomes += await other.deliver_due()
            return outcomes

        return self.call(deliver_all())

    def stop_background(self, grace: float = 10.0) -> None:
        """Stop the background triggers (a delivery in flight gets ``grace`` seconds)."""

        async def stop_all() -> None:
            for other in self.background:
                await other.stop(grace)

        self.call(stop_all(), timeout=grace * max(1, len(self.background)) + 5)

    def look_at_runs(self) -> None:
        """One look at each run still open in the ledger (``run --once --wait`` after waiting,
        so the ledger has the end it just saw)."""

        async def look_all() -> None:
            for trigger in self.triggers:
                if trigger.recorder is not None and isinstance(trigger.action, FollowsRuns):
                    await trigger.recorder.look(trigger.action.run_state)

        self.call(look_all())

    def close(self, grace: float = 10.0) -> None:
        """Stop the triggers (a request in flight gets ``grace`` seconds), close the actions."""

        async def stop_all() -> None:
            try:
                for trigger in self.triggers:
                    await trigger.stop(grace)
                for other in self.background:
                    await other.stop(grace)
            finally:
                for action in self.actions:
                    await action.aclose()

        try:
            stoppable = len(self.triggers) + len(self.background)
            self.call(stop_all(), timeout=grace * max(1, stoppable) + 5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
            if not self._thread.is_alive():
                self.loop.close()
