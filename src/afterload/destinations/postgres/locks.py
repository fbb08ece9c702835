"""The advisory lock that refuses a second process on one materialization, and its holder."""

from __future__ import annotations

from typing import Any

import psycopg

LOCK_CLASS = 0x6166_746C
"""The first key of our advisory locks (``aftl``), so they never meet another application's."""


def lock_holder(
    cur: psycopg.Cursor[tuple[Any, ...]], lock_key: str
) -> tuple[int, str | None, str | None] | None:
    """Who holds the lock: backend pid, client address, application name (None: nobody)."""
    row = cur.execute(
        "SELECT l.pid, host(a.client_addr), a.application_name FROM pg_locks l "
        "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND l.classid = %s::int4::oid AND l.objid = hashtext(%s)::oid AND l.objsubid = 2",
        [LOCK_CLASS, lock_key],
    ).fetchone()
    cur.connection.commit()
    return None if row is None else (int(row[0]), row[1], row[2])
