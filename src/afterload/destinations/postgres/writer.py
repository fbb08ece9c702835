"""One binding's rows into its table: the lines ``COPY``-ed into a temporary table and
shredded by the server (``shred.py``), inserted straight when nothing can conflict, else
merged; hard deletes by key (encoded in Python: their keys were never checked against the
columns, and a key no column can hold is skipped)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from psycopg import errors as pgerrors

from afterload.core.schema import DOCUMENT_COLUMN, PUBLISHED_COLUMN, ColumnType, TableShape
from afterload.destinations.base import (
    DestinationError,
    TableWrite,
)
from afterload.destinations.postgres.catalog import Catalog, Table
from afterload.destinations.postgres.connect import Cursor
from afterload.destinations.postgres.dialect import PG_TYPES
from afterload.destinations.postgres.encode import BadValue, Plan, encode_keys, encoder
from afterload.destinations.postgres.shred import LINES, Shredder
from afterload.destinations.sql import quote

log = logging.getLogger("afterload.postgres")


_PROBE_KEYS = 1000


class Writer(Catalog):
    """Writes one binding's rows inside the commit's transaction."""

    _merge_only: set[str]
    """Tables whose keys met existing rows: skip the attempt to COPY straight in."""

    def _write(self, cur: Cursor, write: TableWrite, stamp: str) -> None:
        table, created = self._evolve(cur, write)
        try:
            self._write_rows(cur, write, table, created, stamp)
        except BadValue as bad:
            raise DestinationError(
                f"{write.binding}: {bad}; the transaction is not committed"
            ) from None

    def _plan(self, table: Table, shape: TableShape, names: list[str]) -> Plan:
        return [(n, encoder(n, shape.columns[n].type)) for n in names]

    def _write_rows(
        self, cur: Cursor, write: TableWrite, table: Table, created: bool, stamp: str
    ) -> None:
        shape = write.shape
        keys = shape.key
        if write.deletes and keys:
            key_cols = ", ".join(quote(table.columns[k].physical) for k in keys)
            defs = ", ".join(
                f"{quote(table.columns[k].physical)} {PG_TYPES[table.columns[k].type]}"
                for k in keys
            )
            cur.execute(f"CREATE TEMP TABLE pg_temp._afterload_deletes ({defs}) ON COMMIT DROP")
            self._copy(
                cur,
                f"pg_temp._afterload_deletes ({key_cols})",
                encode_keys(write.deletes, self._plan(table, shape, keys), shape.projections),
            )
            cond = " AND ".join(
                f"t.{quote(table.columns[k].physical)} = d.{quote(table.columns[k].physical)}"
                for k in keys
            )
            cur.execute(
                f"DELETE FROM {table.qualified} t USING pg_temp._afterload_deletes d WHERE {cond}"
            )
            cur.execute("DROP TABLE pg_temp._afterload_deletes")
        if not write.upserts:
            return
        shred = Shredder.of(table, shape, embedded=write.embedded_document, lines=write.upserts)
        cur.execute(shred.stage())
        self._copy(cur, LINES, shred.chunks(write.upserts))
        target = ", ".join(
            [
                *(quote(table.columns[n].physical) for n in shred.names),
                quote(DOCUMENT_COLUMN),
                quote(PUBLISHED_COLUMN),
            ]
        )
        insert = f"INSERT INTO {table.qualified} ({target}) {shred.select(cur.connection, stamp)}"
        if shape.delta or not keys or created:
            cur.execute(insert)
        elif table.name not in self._merge_only and self._all_new(cur, table, shred):
            # A backfill brings new keys: a plain INSERT is faster than a merge. Should a key
            # exist after all, the savepoint undoes the attempt.
            cur.execute("SAVEPOINT afterload_append")
            try:
                cur.execute(insert)
            except pgerrors.UniqueViolation:
                cur.execute("ROLLBACK TO SAVEPOINT afterload_append")
                self._merge_only.add(table.name)
                log.info("%s: keys meet existing rows; merging from now on", table.name)
                self._merge(cur, table, shred, insert)
            else:
                cur.execute("RELEASE SAVEPOINT afterload_append")
        else:
            self._merge(cur, table, shred, insert)
        cur.execute(f"DROP TABLE {LINES}")

    @staticmethod
    def _merge(cur: Cursor, table: Table, shred: Shredder, insert: str) -> None:
        keys = shred.shape.key
        key_cols = ", ".join(quote(table.columns[k].physical) for k in keys)
        updates = ", ".join(
            f"{c} = EXCLUDED.{c}"
            for c in [
                *(quote(table.columns[n].physical) for n in shred.names if n not in keys),
                quote(DOCUMENT_COLUMN),
                quote(PUBLISHED_COLUMN),
            ]
        )
        cur.execute(f"{insert} ON CONFLICT ({key_cols}) DO UPDATE SET {updates}")

    @staticmethod
    def _all_new(cur: Cursor, table: Table, shred: Shredder) -> bool:
        """True if the first staged lines' keys find no existing row (a cheap index probe)."""
        keys = shred.shape.key
        if any(table.columns[k].type is ColumnType.JSON for k in keys):
            return False
        cond = " AND ".join(
            f"t.{c} = d.{c}" for c in (quote(table.columns[k].physical) for k in keys)
        )
        probe = shred.select(cur.connection, "", probe=_PROBE_KEYS)
        row = cur.execute(
            f"SELECT EXISTS (SELECT 1 FROM ({probe}) d JOIN {table.qualified} t ON {cond})"
        ).fetchone()
        return row is not None and not row[0]

    def _load_once(self, table_name: str, shape: TableShape, keys: list[bytes]) -> list[str]:
        """COPY the keys into a temporary table and join it against the table: one query."""
        conn = self.conn  # type: ignore[attr-defined]
        with conn.cursor() as cur:
            table = self._describe(cur, table_name)
            if table is None:
                conn.commit()
                return []
            names = shape.key
            cols = [table.columns[k] for k in names]
            defs = ", ".join(f"{quote(c.physical)} {PG_TYPES[c.type]}" for c in cols)
            cur.execute(f"CREATE TEMP TABLE pg_temp._afterload_loads ({defs}) ON COMMIT DROP")
            self._copy(
                cur,
                f"pg_temp._afterload_loads ({', '.join(quote(c.physical) for c in cols)})",
                encode_keys(keys, self._plan(table, shape, names)),
            )
            cond = " AND ".join(f"t.{quote(c.physical)} = d.{quote(c.physical)}" for c in cols)
            rows = cur.execute(
                f"SELECT t.{quote(DOCUMENT_COLUMN)}::text FROM {table.qualified} t "
                f"JOIN pg_temp._afterload_loads d ON {cond}"
            ).fetchall()
        conn.commit()
        return [str(r[0]) for r in rows]

    def _copy(self, cur: Cursor, target: str, chunks: Iterator[bytes]) -> None:
        with cur.copy(f"COPY {target} FROM STDIN") as copy:
            for chunk in chunks:
                copy.write(chunk)
