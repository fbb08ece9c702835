"""When a webhook delivers: a pure core, one per webhook, with time passed in.

Estuary's runtime accumulates each committed transaction's window into one pending window
and delivers it when no delivery happened within ``interval`` (at once when unset, or when
none happened since the process started). This core keeps those rules and changes what
Estuary does on failure — there a trigger that finally fails fails the transaction and
restarts the task, blocking all data; here loading never waits:

- :meth:`commit` only merges the commit's window into the *open* window (O(1), no I/O), and
  is called only for commits that stored documents. No start-up fire: a fresh start with
  nothing pending delivers nothing.
- :meth:`begin` *seals* the open window and hands it out; new commits open the next one. A
  sealed window never changes, so every attempt at it sends the same payload and ``run_id``.
- :meth:`finish` with ``delivered=False`` keeps the sealed window pending: it is tried again
  after ``max(interval, backoff)`` (backoff doubles from ``retry_floor`` up to ``retry_cap``,
  and honours a server's ``Retry-After``), and the open window waits behind it, so windows
  reach the receiver in commit order and each one is delivered once.

What phase 2 persists is :class:`PendingState` (sealed and open windows): in the destination
transaction of every commit, and again after each delivery outcome. :meth:`restore` makes
what was pending due at once, as Estuary re-delivers on recovery; a window delivered but not
yet recorded as such is re-sent identically (at-least-once, deduplicable by ``run_id``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from afterload.triggers.webhook.window import Window

#: After a failed delivery wait at least this long, so an interval of 0 never spins.
RETRY_FLOOR = 10.0
#: …and at most this long between failed deliveries (unless the interval is longer).
RETRY_CAP = 300.0


class PendingState(BaseModel):
    """What a webhook still owes, as phase 2 stores it beside the data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sealed: Window | None = None
    open: Window | None = None

    @property
    def empty(self) -> bool:
        return self.sealed is None and self.open is None


@dataclass
class WebhookSchedule:
    """The decisions of one webhook; ``now`` is monotonic seconds from the caller's clock."""

    interval: float = 0.0
    retry_floor: float = RETRY_FLOOR
    retry_cap: float = RETRY_CAP
    sealed: Window | None = None
    open: Window | None = None
    delivered_through: int | None = None
    last_begin: float | None = None
    due_at: float | None = None
    in_flight: bool = False
    failures: int = 0
    stopped: bool = False

    # -- state ---------------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        return self.sealed is not None or self.open is not None

    def state(self) -> PendingState:
        return PendingState(sealed=self.sealed, open=self.open)

    def restore(self, now: float, state: PendingState) -> None:
        """Take over what an earlier process left pending; it is due at once."""
        if self.pending or self.in_flight:
            raise RuntimeError("restore() on a schedule that already holds windows")
        sealed, open_ = state.sealed, state.open
        if sealed is not None and open_ is not None and open_.first <= sealed.last:
            raise ValueError("the open window overlaps the sealed one")
        self.sealed, self.open = sealed, open_
        if self.pending:
            self.due_at = now

    # -- events --------------------------------------------------------------------------

    def commit(self, now: float, window: Window) -> None:
        """A commit that stored documents; ``window`` is its own (see :meth:`Window.of_commit`)."""
        newest = self.open or self.sealed
        if newest is not None and window.first <= newest.last:
            raise ValueError(f"{window.describe()} is not newer than {newest.describe()}")
        if self.delivered_through is not None and window.first <= self.delivered_through:
            raise ValueError(f"{window.describe()} was already delivered")
        self.open = window if self.open is None else self.open.merge(window)
        self._schedule(now)

    def begin(self, now: float) -> Window | None:
        """The window to deliver now, if one is due; sealed until :meth:`finish`."""
        if self.stopped or self.in_flight or self.due_at is None or now < self.due_at:
            return None
        if self.sealed is None:
            self.sealed, self.open = self.open, None
        if self.sealed is None:  # nothing pending after all
            self.due_at = None
            return None
        self.in_flight = True
        self.last_begin = now
        self.due_at = None
        return self.sealed

    def finish(self, now: float, *, delivered: bool, retry_after: float | None = None) -> None:
        """The delivery that :meth:`begin` handed out ended."""
        if not self.in_flight or self.sealed is None:
            raise RuntimeError("finish() without begin()")
        self.in_flight = False
        if delivered:
            self.delivered_through = self.sealed.last
            self.sealed = None
            self.failures = 0
            gap = self.interval
        else:
            self.failures += 1
            backoff = min(self.retry_cap, self.retry_floor * 2 ** (self.failures - 1))
            gap = max(self.interval, backoff, retry_after or 0.0)
        if self.stopped or not self.pending:
            return
        assert self.last_begin is not None
        self.due_at = max(now, self.last_begin + gap) if delivered else now + gap

    def stop(self) -> None:
        self.stopped = True
        self.due_at = None

    def _schedule(self, now: float) -> None:
        if self.stopped or self.in_flight or self.due_at is not None:
            return  # finish(), or the delivery already due, takes the new data along
        earliest = now if self.last_begin is None else self.last_begin + self.interval
        self.due_at = max(now, earliest)
