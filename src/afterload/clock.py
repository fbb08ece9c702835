"""Time as a dependency, so schedules can be tested exactly with a fake clock."""

from __future__ import annotations

import heapq
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

# asyncio is imported by the coroutines below, which run only inside an event loop: a
# ``run --once`` without triggers never starts one, and need not import it (~20 ms).
if TYPE_CHECKING:
    import asyncio


class Clock(Protocol):
    """Monotonic seconds for scheduling, wall time for humans, and a sleep that follows them."""

    def monotonic(self) -> float: ...

    def wall(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when told to; sleepers wake as :meth:`advance` passes them."""

    def __init__(self, start: float = 1_000.0, wall_start: datetime | None = None) -> None:
        self._now = start
        self._origin = start
        self._wall_start = wall_start or datetime(2026, 1, 1, tzinfo=UTC)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> datetime:
        from datetime import timedelta

        return self._wall_start + timedelta(seconds=self._now - self._origin)

    async def sleep(self, seconds: float) -> None:
        import asyncio

        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._sleepers, (self._now + max(0.0, seconds), self._seq, fut))
        await fut

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its own deadline, in order."""
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not fut.done():
                fut.set_result(None)
            await _settle()
        self._now = target
        await _settle()


async def _settle() -> None:
    """Let woken tasks run until they block again."""
    import asyncio

    for _ in range(20):
        await asyncio.sleep(0)
