"""When to fire: the trigger's schedule as a pure core, with time passed in.

Timing follows the original connector: fire once at start, then after each commit that
stored documents, at ``max(now, last fire + interval)``, with at most one fire scheduled at a
time. Unlike the original it never fires for an empty commit, and keeps data *pending* until
a run created after it exists: a fire skipped because a run is active, or one that failed
after its retries, is tried again an interval later. No I/O, so property tests drive it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: After a skipped or failed fire, wait at least this long even when ``interval`` is shorter,
#: so a ``0s`` interval never turns into a busy loop against the target.
RETRY_FLOOR = 10.0


@dataclass
class TriggerCore:
    """The decision logic, with time passed in: no I/O, so property tests can drive it.

    ``commits`` counts data commits (the start-up fire counts as one: data committed by an
    earlier process may not have a run yet); ``covered`` is the count a successful fire has
    covered. Data is pending while ``commits > covered``.

    A kind whose runs must *succeed* to cover data (dbt Core: a failing model leaves the data
    pending) finishes a fire with ``confirm``: the commits it would cover wait in
    ``awaiting`` until :meth:`run_ended` says how the run ended. While they wait no new fire
    is scheduled for them; a failed run schedules a retry an interval later.
    """

    interval: float
    retry_floor: float = RETRY_FLOOR
    commits: int = 0
    covered: int = 0
    last_fire: float | None = None
    due_at: float | None = None
    in_flight: int | None = None
    stopped: bool = False
    awaiting: dict[int, int] = field(default_factory=dict)

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

    def finish(self, now: float, *, started: bool, confirm: int | None = None) -> None:
        """The fire ended; ``started`` means a run now exists that was created after it began.

        With ``confirm`` (a key for that run) the run covers the data only once
        :meth:`run_ended` reports its success.
        """
        if self.in_flight is None:
            raise RuntimeError("finish() without begin()")
        if started and confirm is not None:
            self.awaiting[confirm] = self.in_flight
        elif started:
            self.covered = max(self.covered, self.in_flight)
        self.in_flight = None
        if self.stopped or not self.unclaimed:
            return
        assert self.last_fire is not None
        gap = self.interval if started else max(self.interval, self.retry_floor)
        self.due_at = max(now, self.last_fire + gap)

    @property
    def unclaimed(self) -> bool:
        """Commits that neither a finished run covers nor a running one may cover."""
        return self.commits > max(self.covered, *self.awaiting.values(), 0)

    def run_ended(self, now: float, key: int, *, success: bool) -> None:
        """A run started with ``confirm=key`` ended; only a success covers its commits."""
        covers = self.awaiting.pop(key, None)
        if covers is None:
            return
        if success:
            self.covered = max(self.covered, covers)
        if self.stopped or self.in_flight is not None or self.due_at is not None:
            return
        if not self.unclaimed:
            return
        gap = self.interval if success else max(self.interval, self.retry_floor)
        self.due_at = max(now, (now if self.last_fire is None else self.last_fire) + gap)

    def stop(self) -> None:
        self.stopped = True
        self.due_at = None

    def _schedule(self, now: float) -> None:
        if self.in_flight is not None or self.due_at is not None:
            return  # the running fire's finish(), or the scheduled one, takes care of it
        earliest = now if self.last_fire is None else self.last_fire + self.interval
        self.due_at = max(now, earliest)
