"""What every trigger kind gives the runner: one fire, an access check, a wait for a run.

The runner (:mod:`.runner`) owns *when* to fire; a kind (dbt Cloud, a webhook, dbt Core)
owns *how*. A new kind implements :class:`TriggerAction` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

RunResult = Literal["success", "error", "cancelled", "timeout"]

FOLLOW_EVERY = 30.0
"""Seconds between two looks at the runs still going: one call per open run per look (the
run ledger's, :mod:`.ledger`; here so that a run without triggers need not import it)."""


@dataclass(frozen=True, slots=True)
class FireOutcome:
    """What one fire did, and why, in words fit for a log line."""

    kind: Literal["started", "skipped", "failed"]
    message: str
    run_id: int | None = None
    url: str | None = None
    """Where a person can look at the run that was started."""
    cancelled: tuple[int, ...] = ()
    covers: bool = True
    """Whether the run covers all data committed before the fire. A rerun from the point of
    failure does not (nodes that succeeded before are not rebuilt): the data stays pending."""
    active: tuple[int, ...] = ()
    """The runs that made a ``skip`` fire start nothing."""

    @property
    def started(self) -> bool:
        return self.kind == "started"


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How a started run ended (or that waiting for it timed out)."""

    result: RunResult
    message: str


class TriggerAction(Protocol):
    """One trigger kind, configured: all its I/O happens on the runner's event loop."""

    label: str
    """Names the target in log lines, e.g. ``dbt job 42``."""
    interval: float
    """Seconds: at most one fire per interval, and only after new data was committed."""

    async def fire(self) -> FireOutcome:
        """One fire now; failures are an outcome, never an exception."""
        ...

    async def check(self) -> str:
        """Prove the target is usable; raise :class:`afterload.errors.AfterloadError` if not.

        An error whose ``fatal`` attribute is False (a host down) only gets logged at start.
        """
        ...

    async def wait(self, outcome: FireOutcome, timeout: float) -> RunEnd:
        """Wait until the run ``outcome`` started ends, at most ``timeout`` seconds."""
        ...

    async def aclose(self) -> None: ...
