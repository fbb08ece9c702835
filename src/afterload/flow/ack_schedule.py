"""The sync schedule as Estuary's SQL connectors apply it: by delaying ``Acknowledged``.

The runtime starts no new transaction's stores before the last one is acknowledged, so
holding ``Acknowledged`` back until the schedule's next tick is what spaces the commits out.
As Estuary does: the recovery commit is never delayed; a delay applies only while each of
the last 5 transactions that stored anything stored fewer than 1,000,000 documents (a
backfill runs at full speed); transactions that stored nothing are left out of that
history. The ticks themselves are the NDJSON driver's policy (epoch-aligned, jittered,
fast-sync window). Pure: time is passed in.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

from afterload.ndjson.sync_schedule import SyncPolicy

HISTORY = 5
BACKFILL_THRESHOLD = 1_000_000


class AckSchedule:
    def __init__(self, policy: SyncPolicy) -> None:
        self.policy = policy
        self._stored: deque[int] = deque(maxlen=HISTORY)
        self.last_ack_at: datetime | None = None

    def acknowledge_at(self, stores: int, *, recovery: bool, now: datetime) -> datetime | None:
        """When to send this Acknowledged: None for now, else the time to wait for.

        Call once per Acknowledged; the caller reports it sent with :meth:`sent`.
        """
        if recovery:
            return None
        if stores > 0:
            self._stored.append(stores)
        backfill = any(n >= BACKFILL_THRESHOLD for n in self._stored)
        due = self.policy.next_commit_at(self.last_ack_at, previous_was_full=backfill)
        return due if due is not None and due > now else None

    def sent(self, at: datetime) -> None:
        self.last_ack_at = at
