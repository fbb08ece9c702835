"""One binding's rows into its table: ``COPY`` straight in when nothing can conflict, else
``COPY`` into a temporary table and one merge; hard deletes by key."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from psycopg import errors as pgerrors

from afterload.core import exactjson
from afterload.core.schema import DOCUMENT_COLUMN, PUBLISHED_COLUMN, ColumnType, TableShape
from afterload.destinations.base import (
    DestinationError,
    TableWrite,
)
from afterload.destinations.postgres.catalog import Catalog, Table
from afterload.destinations.postgres.connect import Cursor
from afterload.destinations.postgres.dialect import PG_TYPES
from afterload.destinations.postgres.encode import BadValue, Plan, encode_keys, encode_rows, encoder
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
                encode_keys(write.deletes, self._plan(table, shape, keys)),
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
        names = [c.name for c in shape.ordered()]
        plan = self._plan(table, shape, names)
        target = ", ".join(
            [
                *(quote(table.columns[n].physical) for n in names),
                quote(DOCUMENT_COLUMN),
                quote(PUBLISHED_COLUMN),
            ]
        )
        into = f"{table.qualified} ({target})"
        if shape.delta or not keys or created:
            self._copy(cur, into, encode_rows(write.upserts, plan, stamp))
            return
        if table.name not in self._merge_only and self._all_new(cur, table, shape, write):
            # A backfill brings new keys: COPY straight in is about twice as fast as staging
            # and merging. Should a key exist after all, the savepoint undoes the attempt.
            cur.execute("SAVEPOINT afterload_append")
            try:
                self._copy(cur, into, encode_rows(write.upserts, plan, stamp))
            except pgerrors.UniqueViolation:
                cur.execute("ROLLBACK TO SAVEPOINT afterload_append")
                self._merge_only.add(table.name)
                log.info("%s: keys meet existing rows; merging from now on", table.name)
            else:
                cur.execute("RELEASE SAVEPOINT afterload_append")
                return
        cur.execute(
            f"CREATE TEMP TABLE pg_temp._afterload_rows (LIKE {table.qualified}) ON COMMIT DROP"
        )
        self._copy(
            cur, f"pg_temp._afterload_rows ({target})", encode_rows(write.upserts, plan, stamp)
        )
        key_cols = ", ".join(quote(table.columns[k].physical) for k in keys)
        updates = ", ".join(
            f"{c} = EXCLUDED.{c}"
            for c in [
                *(quote(table.columns[n].physical) for n in names if n not in keys),
                quote(DOCUMENT_COLUMN),
                quote(PUBLISHED_COLUMN),
            ]
        )
        cur.execute(
            f"INSERT INTO {table.qualified} ({target}) "
            f"SELECT {target} FROM pg_temp._afterload_rows "
            f"ON CONFLICT ({key_cols}) DO UPDATE SET {updates}"
        )
        cur.execute("DROP TABLE pg_temp._afterload_rows")

    def _all_new(self, cur: Cursor, table: Table, shape: TableShape, write: TableWrite) -> bool:
        """True if a sample of the keys finds no existing row (a cheap index probe)."""
        keys = shape.key
        if any(table.columns[k].type is ColumnType.JSON for k in keys):
            return False
        columns: list[list[str | None]] = [[] for _ in keys]
        plans = self._plan(table, shape, keys)
        for raw in write.upserts[:_PROBE_KEYS]:
            doc = exactjson.loads(raw)
            for values, (name, enc) in zip(columns, plans, strict=True):
                value = doc.get(name)
                # Plain text for the parameter: only strings would differ from COPY's form.
                try:
                    values.append(value if type(value) is str else enc(value))
                except BadValue:
                    return False
        types = [PG_TYPES[table.columns[k].type] for k in keys]
        physical = ", ".join(f"t.{quote(table.columns[k].physical)}" for k in keys)
        probes = ", ".join(f"%s::text[]::{t}[]" for t in types)
        row = cur.execute(
            f"SELECT EXISTS (SELECT 1 FROM {table.qualified} t WHERE ({physical}) IN "
            f"(SELECT * FROM unnest({probes})))",
            columns,
        ).fetchone()
        return row is not None and not row[0]

    def _copy(self, cur: Cursor, target: str, chunks: Iterator[bytes]) -> None:
        with cur.copy(f"COPY {target} FROM STDIN") as copy:
            for chunk in chunks:
                copy.write(chunk)
