"""Several shards, one dbt job: the shards of a materialization share its fires.

Each shard runs the house's trigger schedule for its own commits. On PostgreSQL, every fire
first takes a row lock on ``afterload_trigger_fires`` (one row per job) and reads when the
job was last fired by any shard of the materialization:

- fired after this shard's newest commit: that run covers this shard's data, nothing to do;
- fired less than an interval ago: skip; the schedule keeps the data pending and tries
  again an interval later, when the job may fire again (or another shard's fire covered it);
- otherwise fire, holding the lock, and record the time when a run was started.

So the job sees at most one fire per interval from the whole materialization, and every
shard's data is still followed by a run created after it. The lock is held during the fire
(bounded by the client's timeouts), so two shards never fire at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from afterload.destinations.sql import quote
from afterload.triggers.base import FireOutcome, RunEnd, TriggerAction

TABLE = "afterload_trigger_fires"


class SharedFires:
    """Wraps a trigger action so that the shards of one materialization share its interval."""

    def __init__(
        self,
        inner: TriggerAction,
        connect: Callable[[], Any],
        schema: str,
        job: str,
        last_commit: Callable[[], datetime | None],
    ) -> None:
        self.inner = inner
        self.label = inner.label
        self.interval = inner.interval
        self._connect = connect
        self._table = f"{quote(schema)}.{quote(TABLE)}"
        self._job = job
        self._last_commit = last_commit

    async def fire(self) -> FireOutcome:
        conn = await asyncio.to_thread(self._connect)
        try:
            verdict = await asyncio.to_thread(self._claim, conn)
            if verdict is not None:
                await asyncio.to_thread(conn.rollback)
                return verdict
            outcome = await self.inner.fire()
            await asyncio.to_thread(self._record, conn, outcome.started)
            return outcome
        finally:
            await asyncio.to_thread(conn.close)

    def _claim(self, conn: Any) -> FireOutcome | None:
        with conn.cursor() as cur:
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} "
                "(job TEXT PRIMARY KEY, fired_at TIMESTAMPTZ)"
            )
            conn.commit()
            cur.execute(
                f"INSERT INTO {self._table} VALUES (%s, NULL) ON CONFLICT DO NOTHING", [self._job]
            )
            row = cur.execute(
                f"SELECT fired_at, now() FROM {self._table} WHERE job = %s FOR UPDATE", [self._job]
            ).fetchone()
        fired_at, now = row
        if fired_at is None:
            return None
        last = self._last_commit()
        if last is not None and fired_at >= last:
            return FireOutcome("started", f"covered by a run another shard started at {fired_at}")
        if now - fired_at < timedelta(seconds=self.interval):
            return FireOutcome("skipped", f"another shard fired at {fired_at:%H:%M:%S}")
        return None

    def _record(self, conn: Any, started: bool) -> None:
        if started:
            with conn.cursor() as cur:
                cur.execute(
                    f"UPDATE {self._table} SET fired_at = now() WHERE job = %s", [self._job]
                )
        conn.commit()

    async def check(self) -> str:
        return await self.inner.check()

    async def wait(self, outcome: FireOutcome, timeout: float) -> RunEnd:
        return await self.inner.wait(outcome, timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()
