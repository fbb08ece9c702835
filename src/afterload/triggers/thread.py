"""The thread that owns the triggers' event loop, so that the commit loop never waits on HTTP.

:class:`TriggerThread` runs a run's triggers (each a :class:`~afterload.triggers.runner.JobTrigger`)
and its webhooks (:class:`BackgroundTrigger`) on an asyncio loop in a thread of its own: a long
commit never delays a fire, and a slow or hung target never delays a commit. One concept per
module: :mod:`.runner` is one trigger's async shell; this is the owner of the loop they share.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol, TypeVar

from afterload.clock import Clock
from afterload.errors import AfterloadError
from afterload.triggers.base import FireOutcome, TriggerAction
from afterload.triggers.ledger import FollowsRuns, LedgerRecorder
from afterload.triggers.memory import TriggerMemory
from afterload.triggers.runner import JobTrigger

log = logging.getLogger("afterload.trigger")

T = TypeVar("T")


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
