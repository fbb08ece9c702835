"""The tables as the server has them, and bringing them in line with a binding's shape:
create, add columns, widen, comment — inside the commit's transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from afterload.core.schema import DOCUMENT_COLUMN, PUBLISHED_COLUMN, ColumnType, TableShape
from afterload.destinations.base import (
    DestinationError,
    TableWrite,
    widening_refused,
)
from afterload.destinations.postgres.connect import Cursor, sql_literal
from afterload.destinations.postgres.dialect import (
    FROM_PG,
    PG_TYPES,
    column_comment,
    pg_identifier,
    pointer,
    prop_from_comment,
)
from afterload.destinations.postgres.locks import LOCK_CLASS
from afterload.destinations.sql import quote

log = logging.getLogger("afterload.postgres")


@dataclass(slots=True)
class _Column:
    prop: str
    physical: str
    type: ColumnType


@dataclass(slots=True)
class Table:
    name: str
    qualified: str
    columns: dict[str, _Column] = field(default_factory=dict)


class Catalog:
    """The tables of one schema: what exists, and how to make it fit a shape."""

    schema: str
    _tables: dict[str, Table]

    def _q(self, table: str) -> str:
        return f"{quote(self.schema)}.{quote(pg_identifier(table))}"

    def _describe(self, cur: Cursor, table: str) -> Table | None:
        cached = self._tables.get(table)
        if cached is not None:
            return cached
        qualified = self._q(table)
        rows = cur.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), "
            "col_description(a.attrelid, a.attnum) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum",
            [qualified],
        ).fetchall()
        if not rows:
            return None
        found = Table(table, qualified)
        for physical, pgtype, comment in rows:
            if physical in (DOCUMENT_COLUMN, PUBLISHED_COLUMN):
                continue
            base = str(pgtype).split("(")[0]
            prop = prop_from_comment(physical, comment)
            found.columns[prop] = _Column(prop, physical, FROM_PG.get(base, ColumnType.JSON))
        self._tables[table] = found
        return found

    def _physical_names(self, binding: str, shape: TableShape) -> dict[str, str]:
        names: dict[str, str] = {}
        seen: dict[str, str] = {
            DOCUMENT_COLUMN: "afterload's " + DOCUMENT_COLUMN,
            PUBLISHED_COLUMN: "afterload's " + PUBLISHED_COLUMN,
        }
        for col in shape.ordered():
            physical = pg_identifier(col.name)
            other = seen.get(physical)
            if other is not None:
                # The shape refuses such a line (core/schema.py); this guards a shape built
                # without the destination's names.
                raise DestinationError(
                    f"{binding}: property {pointer(col.name)} and {other} would both be "
                    f"column {physical!r} in PostgreSQL; rename one of them"
                )
            seen[physical] = "property " + pointer(col.name)
            names[col.name] = physical
        return names

    def _evolve(self, cur: Cursor, write: TableWrite) -> tuple[Table, bool]:
        """Bring the table in line with the shape; True if it was created now (so empty)."""
        shape = write.shape
        names = self._physical_names(write.binding, shape)
        existing = self._describe(cur, write.table)
        conn = cur.connection
        qualified = self._q(write.table)
        if existing is None or any(
            (have := existing.columns.get(c.name)) is None or have.type is not c.type
            for c in shape.ordered()
        ):
            # A change: another process (a second config on this table) may be making it too.
            # One at a time per table, till the transaction ends; then look again, fresh.
            cur.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                [LOCK_CLASS, "table " + qualified],
            )
            self._tables.pop(write.table, None)
            existing = self._describe(cur, write.table)
        if existing is None:
            defs = []
            for col in shape.ordered():
                null = " NOT NULL" if col.key else ""
                defs.append(f"{quote(names[col.name])} {PG_TYPES[col.type]}{null}")
            defs.append(f"{quote(DOCUMENT_COLUMN)} JSONB NOT NULL")
            defs.append(f"{quote(PUBLISHED_COLUMN)} TIMESTAMPTZ NOT NULL")
            if not shape.delta and shape.key:
                defs.append(f"PRIMARY KEY ({', '.join(quote(names[k]) for k in shape.key)})")
            cur.execute(f"CREATE TABLE {qualified} ({', '.join(defs)})")
            kind = "every document appended (delta updates)" if shape.delta else "one row per key"
            comment = (
                f"afterload: materialized from binding {write.binding!r}, {kind}; "
                f"{DOCUMENT_COLUMN} holds the whole document, {PUBLISHED_COLUMN} its commit time"
            )
            cur.execute(f"COMMENT ON TABLE {qualified} IS {sql_literal(conn, comment)}")
            for col in shape.ordered():
                self._comment_column(cur, qualified, names[col.name], col.name)
            cur.execute(
                f"COMMENT ON COLUMN {qualified}.{quote(DOCUMENT_COLUMN)} IS "
                f"{sql_literal(conn, 'afterload: the whole document, as read')}"
            )
            cur.execute(
                f"COMMENT ON COLUMN {qualified}.{quote(PUBLISHED_COLUMN)} IS "
                f"{sql_literal(conn, 'afterload: when the transaction holding it was committed')}"
            )
            table = Table(
                write.table,
                qualified,
                {c.name: _Column(c.name, names[c.name], c.type) for c in shape.ordered()},
            )
            self._tables[write.table] = table
            return table, True
        for col in shape.ordered():
            have = existing.columns.get(col.name)
            physical = names[col.name]
            if have is None:
                cur.execute(
                    f"ALTER TABLE {qualified} ADD COLUMN {quote(physical)} {PG_TYPES[col.type]}"
                )
                self._comment_column(cur, qualified, physical, col.name)
                existing.columns[col.name] = _Column(col.name, physical, col.type)
                log.info("%s: added column %s %s", write.table, physical, PG_TYPES[col.type])
            elif have.type is not col.type:
                if col.type is ColumnType.DOUBLE and have.type is ColumnType.BIGINT:
                    found = _rounded_by_double(cur, qualified, quote(physical))
                    if found is not None:
                        refused = widening_refused(write.binding, write.table, physical, found)
                        raise DestinationError(refused)
                    cur.execute(
                        f"ALTER TABLE {qualified} ALTER COLUMN {quote(physical)} "
                        "TYPE DOUBLE PRECISION"
                    )
                    have.type = ColumnType.DOUBLE
                    log.info("%s: widened column %s to DOUBLE PRECISION", write.table, physical)
                elif col.type is ColumnType.HUGEINT and have.type is ColumnType.BIGINT:
                    cur.execute(
                        f"ALTER TABLE {qualified} ALTER COLUMN {quote(physical)} TYPE NUMERIC"
                    )
                    have.type = ColumnType.HUGEINT
                    log.info(
                        "%s: column %s holds integers past 64 bits: now NUMERIC",
                        write.table,
                        physical,
                    )
                else:
                    raise DestinationError(
                        f"{write.binding}: column {physical!r} of {write.table} is "
                        f"{PG_TYPES[have.type]} but the binding has {PG_TYPES[col.type]} "
                        f"for property {pointer(col.name)}"
                    )
        return existing, False

    def _comment_column(self, cur: Cursor, qualified: str, physical: str, prop: str) -> None:
        text = sql_literal(cur.connection, column_comment(prop))
        cur.execute(f"COMMENT ON COLUMN {qualified}.{quote(physical)} IS {text}")


def _rounded_by_double(cur: Cursor, table: str, column: str) -> int | None:
    """A value of a BIGINT column that DOUBLE PRECISION would round, if any. PostgreSQL's own
    ``float8::numeric`` keeps 15 digits only, so the integers past 2^53 are judged here."""
    with cur.connection.cursor(name="afterload_widening") as rows:  # streamed, not fetched
        rows.execute(
            f"SELECT {column} FROM {table} "
            f"WHERE {column} NOT BETWEEN -9007199254740992 AND 9007199254740992"
        )
        for (value,) in rows:
            if float(value) != value:
                return int(value)
    return None
