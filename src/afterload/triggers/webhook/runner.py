"""The webhook's async shell: one :class:`WebhookRunner` per configured webhook.

It owns the webhook's pure :class:`~.schedule.WebhookSchedule` and lives in two threads:

- on the commit path (the driver's thread), :meth:`states` puts the pending windows, with
  the commit being stored merged in, into that commit's checkpoint, and :meth:`on_commit`
  adds the window once the commit stood. Both are O(1) bookkeeping under a lock, never I/O,
  so a hung receiver never delays a commit;
- on the triggers' event loop, a background task delivers the window the schedule hands
  out, and a failed delivery stays pending and is retried later: loading never waits for it
  and never restarts because of it.

Durability: the windows are committed with the data, so what was committed and not
delivered is delivered after a SIGKILL. A delivery's outcome is recorded with the next
commit (the driver commits the checkpoint alone when it is idle); a window delivered but not
yet recorded is re-sent after a crash, byte for byte with the same ``run_id`` — delivery is
at least once, and receivers deduplicate by ``run_id``, as with Estuary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Mapping

import httpx
from pydantic import JsonValue, ValidationError

from afterload import __version__
from afterload.clock import Clock, SystemClock
from afterload.triggers.base import FireOutcome
from afterload.triggers.commits import CommitFacts
from afterload.triggers.webhook.config import WebhookTrigger
from afterload.triggers.webhook.delivery import DeliveryResult, RetryPolicy, deliver, make_client
from afterload.triggers.webhook.schedule import PendingState, WebhookSchedule
from afterload.triggers.webhook.window import Window

log = logging.getLogger("afterload.webhook")

# httpx logs each request's full URL at INFO (and httpcore more at DEBUG); a webhook URL's
# path can be its secret (Slack's is), so those loggers never go below WARNING here.
for _name in ("httpx", "httpcore"):
    if logging.getLogger(_name).level < logging.WARNING:
        logging.getLogger(_name).setLevel(logging.WARNING)

#: What ``{{connector_image}}`` renders to: afterload stands where Estuary's connector would.
CONNECTOR_IMAGE = f"afterload:{__version__}"


def state_key(name: str) -> str:
    """The webhook's key in :attr:`Checkpoint.triggers <afterload.core.checkpoint.Checkpoint>`."""
    return f"webhook:{name}"


class WebhookRunner:
    """Delivers one webhook's windows on the schedule; see the module docstring."""

    def __init__(
        self,
        name: str,
        trigger: WebhookTrigger,
        *,
        interval: float,
        materialization: str,
        client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        policy: RetryPolicy | None = None,
        retry_floor: float | None = None,
    ) -> None:
        self.name = name
        self.key = state_key(name)
        self.trigger = trigger
        self.materialization = materialization
        self.label = f"webhook {name} ({trigger.endpoint()})"
        self.clock = clock or SystemClock()
        self._own_client = client is None
        self.client = client or make_client()
        self.policy = policy or RetryPolicy()
        self.schedule = WebhookSchedule(interval=interval)
        if retry_floor is not None:
            self.schedule.retry_floor = retry_floor
        self.results: list[DeliveryResult] = []
        self.outcomes: list[FireOutcome] = []
        self._lock = threading.Lock()
        self._changed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"WebhookRunner({self.label})"

    # -- the commit path (any thread) -------------------------------------------------------

    def restore(self, states: Mapping[str, JsonValue]) -> None:
        stored = states.get(self.key)
        if stored is None:
            return
        try:
            state = PendingState.model_validate(stored)
        except ValidationError:
            log.warning("%s: the stored pending state is unreadable; it is dropped", self.label)
            return
        with self._lock:
            self.schedule.restore(self.clock.monotonic(), state)
        if not state.empty:
            pending = [w.describe() for w in (state.sealed, state.open) if w is not None]
            log.info("%s: %s committed earlier still to deliver", self.label, ", ".join(pending))

    def states(self, upcoming: CommitFacts) -> dict[str, JsonValue]:
        with self._lock:
            self._changed = False
            sealed, open_ = self.schedule.sealed, self.schedule.open
        window = self._window(upcoming)
        if window is not None:
            open_ = window if open_ is None else open_.merge(window)
        if sealed is None and open_ is None:
            return {self.key: None}  # nothing owed: the entry goes
        state = PendingState(sealed=sealed, open=open_)
        return {self.key: state.model_dump(mode="json")}

    def on_commit(self, commit: CommitFacts) -> None:
        """The listener: a commit stood; its window joins the open one. Returns at once."""
        window = self._window(commit)
        if window is None:
            return
        try:
            with self._lock:
                self.schedule.commit(self.clock.monotonic(), window)
        except ValueError as exc:  # a bug here must never fail the commit that stood
            log.error("%s: %s is not delivered (%s)", self.label, window.describe(), exc)
            return
        self._poke()

    def changed(self) -> bool:
        with self._lock:
            return self._changed

    @staticmethod
    def _window(stamp: CommitFacts) -> Window | None:
        if not stamp.tables or stamp.published_at is None:
            return None
        return Window.of_commit(
            stamp.sequence,
            opened_at=stamp.published_at,
            published_min=stamp.published_at,
            published_max=stamp.published_at,
            collections=stamp.tables,
        )

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(wake.set)

    # -- the event loop ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background task (``run`` following its sources)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"afterload-{self.label}")

    async def deliver_due(self) -> list[FireOutcome]:
        """Deliver what the schedule says is due now, until nothing is (``run --once``)."""
        outcomes: list[FireOutcome] = []
        while True:
            outcome = await self._deliver_one()
            if outcome is None:
                return outcomes
            outcomes.append(outcome)
            if outcome.kind == "failed":
                return outcomes

    async def stop(self, grace: float = 10.0) -> None:
        """Stop scheduling; a delivery in flight gets ``grace`` seconds, then is cancelled
        (its window stays pending in the checkpoint and is delivered after the next start)."""
        with self._lock:
            self.schedule.stop()
        if self._wake is not None:
            self._wake.set()
        try:
            if self._task is not None:
                await self._wait_task(self._task, grace)
        finally:
            if self._own_client and not self.client.is_closed:
                await self.client.aclose()

    async def _wait_task(self, task: asyncio.Task[None], grace: float) -> None:
        """Wait for the task, cancel it after ``grace``. ``asyncio.wait`` never raises what the
        task raised: a second stop (or a task cancelled meanwhile) ends quietly too."""
        if not task.done():
            done, _ = await asyncio.wait({task}, timeout=grace)
            if not done:
                log.warning("%s: stopped with a delivery in flight", self.label)
                task.cancel()
                await asyncio.wait({task}, timeout=grace)
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.warning("%s: %s", self.label, task.exception())

    async def _deliver_one(self) -> FireOutcome | None:
        with self._lock:
            window = self.schedule.begin(self.clock.monotonic())
        if window is None:
            return None
        variables = window.variables(
            materialization_name=self.materialization, connector_image=CONNECTOR_IMAGE
        )
        try:
            result = await deliver(
                self.name, self.trigger, variables, client=self.client, policy=self.policy
            )
        except Exception as exc:  # a bug must not leave the window in flight forever
            log.exception("%s: unexpected error", self.label)
            result = DeliveryResult(self.name, False, 0, f"{self.label}: {type(exc).__name__}")
        except BaseException:
            with self._lock:
                self.schedule.finish(self.clock.monotonic(), delivered=False)
            raise
        with self._lock:
            self.schedule.finish(
                self.clock.monotonic(), delivered=result.delivered, retry_after=result.retry_after
            )
            self._changed = True
            due = self.schedule.due_at
        self.results.append(result)
        return self._record(window, result, due)

    def _record(self, window: Window, result: DeliveryResult, due: float | None) -> FireOutcome:
        covered = window.describe()
        if result.delivered:
            outcome = FireOutcome("started", f"{result.message} ({covered})")
            log.info("%s", outcome.message)
        else:
            later = ""
            if due is not None:
                later = (
                    f"; kept pending, next try in {max(0.0, due - self.clock.monotonic()):.0f} s"
                )
            outcome = FireOutcome("failed", f"{result.message} ({covered}){later}")
            log.warning("%s", outcome.message)
        self.outcomes.append(outcome)
        return outcome

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            with self._lock:
                if self.schedule.stopped:
                    return
            if await self._deliver_one() is not None:
                continue
            self._wake.clear()
            with self._lock:
                due = self.schedule.due_at
                stopped = self.schedule.stopped
            if stopped:
                return
            now = self.clock.monotonic()
            if due is not None and due <= now:
                continue  # became due while we looked
            await self._sleep_or_wake(None if due is None else due - now)

    async def _sleep_or_wake(self, seconds: float | None) -> None:
        assert self._wake is not None
        waiter = asyncio.ensure_future(self._wake.wait())
        if seconds is None:
            try:
                await waiter
            finally:
                waiter.cancel()
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (waiter, sleeper):
                t.cancel()
