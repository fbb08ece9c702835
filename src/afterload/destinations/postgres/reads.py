"""Reads outside a commit, for the Flow driver: stored documents by key, committed ranges."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import psycopg

from afterload.core.checkpoint import Checkpoint
from afterload.core.schema import TableShape
from afterload.destinations.postgres.connect import Connection
from afterload.destinations.postgres.writer import Writer
from afterload.destinations.sql import CHECKPOINTS

T = TypeVar("T")


class Reads(Writer):
    """Each read reconnects and retries like a commit (the destination's own machinery)."""

    if TYPE_CHECKING:

        def _retrying(self, what: str, attempt: Callable[[], T]) -> T: ...

        def _attach(self, pending: Checkpoint | None) -> bool: ...

        def _failed(self, exc: psycopg.Error, what: str) -> Exception: ...

        @property
        def conn(self) -> Connection: ...

    def load_documents(self, table: str, shape: TableShape, keys: list[bytes]) -> list[str]:
        if not keys:
            return []

        def attempt() -> list[str]:
            self._attach(None)
            try:
                return self._load_once(table, shape, keys)
            except psycopg.Error as exc:
                raise self._failed(exc, f"loading documents of {table}") from None

        return self._retrying(f"loading documents of {table}", attempt)

    def committed_checkpoints(self, prefix: str) -> dict[str, Checkpoint]:
        """Every committed checkpoint of a materialization whose name starts with ``prefix``
        (the Flow driver's key ranges, to inherit a parent range's position)."""

        def attempt() -> dict[str, Checkpoint]:
            self._attach(None)
            try:
                with self.conn.cursor() as cur:
                    rows = cur.execute(
                        f"SELECT materialization, checkpoint::text FROM {self._q(CHECKPOINTS)} "
                        "WHERE starts_with(materialization, %s) AND transactions > 0",
                        [prefix],
                    ).fetchall()
                self.conn.commit()
            except psycopg.Error as exc:
                raise self._failed(exc, "reading checkpoints") from None
            return {str(name): Checkpoint.from_json(text) for name, text in rows}

        return self._retrying("reading checkpoints", attempt)

    def fence_ranges(self, prefix: str, overlaps: Callable[[str], bool]) -> list[str]:
        """Raise the fence of every other checkpoint row named ``prefix…`` that ``overlaps``
        says shares keys with this one (Estuary's installFence): a process still running on a
        parent range, split since, can then commit nothing; returns the names fenced."""

        def attempt() -> list[str]:
            self._attach(None)
            try:
                with self.conn.cursor() as cur:
                    names = [
                        str(row[0])
                        for row in cur.execute(
                            f"SELECT materialization FROM {self._q(CHECKPOINTS)} "
                            "WHERE starts_with(materialization, %s)",
                            [prefix],
                        ).fetchall()
                    ]
                    fenced = [name for name in names if overlaps(name)]
                    if fenced:
                        cur.execute(
                            f"UPDATE {self._q(CHECKPOINTS)} SET fence = fence + 1 "
                            "WHERE materialization = ANY(%s)",
                            [fenced],
                        )
                self.conn.commit()
            except psycopg.Error as exc:
                raise self._failed(exc, "fencing key ranges") from None
            return fenced

        return self._retrying("fencing key ranges", attempt)
