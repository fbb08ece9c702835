"""The tables as the file has them, and bringing them in line with a binding's shape."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb

from afterload.core.schema import DOCUMENT_COLUMN, PUBLISHED_COLUMN, ColumnType, TableShape
from afterload.destinations.base import (
    REBUILD_SUFFIX,
    DestinationError,
    widening_refused,
)
from afterload.destinations.sql import first_line, quote

log = logging.getLogger("afterload.duckdb")


_DUCKDB_TYPES: dict[str, ColumnType] = {
    "BIGINT": ColumnType.BIGINT,
    "HUGEINT": ColumnType.HUGEINT,
    "DOUBLE": ColumnType.DOUBLE,
    "BOOLEAN": ColumnType.BOOLEAN,
    "VARCHAR": ColumnType.VARCHAR,
    "TIMESTAMP WITH TIME ZONE": ColumnType.TIMESTAMPTZ,
    "TIMESTAMPTZ": ColumnType.TIMESTAMPTZ,
    "DATE": ColumnType.DATE,
    "JSON": ColumnType.JSON,
}


class Catalog:
    """The tables of one schema in the file: what exists, and how to make it fit a shape."""

    path: Path
    schema: str
    _con: duckdb.DuckDBPyConnection | None
    _tables: dict[str, dict[str, ColumnType]]
    _keyed: dict[str, bool]
    _documents: dict[str, str]
    """Per table: flow_document is "required" (NOT NULL), "optional" or "absent"."""
    _fresh: set[str]
    """Tables created by this process in which no transaction repeated a key yet: a backfill,
    whose keys are not probed for repeats before each insert."""

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise DestinationError(f"{self.path} is not open")
        return self._con

    def _q(self, table: str) -> str:
        return f"{quote(self.schema)}.{quote(table)}"

    def columns(self, table: str) -> dict[str, ColumnType] | None:
        cached = self._tables.get(table)
        if cached is not None:
            return dict(cached)
        rows = self.con.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [self.schema, table],
        ).fetchall()
        if not rows:
            return None
        cols = {
            str(name): _DUCKDB_TYPES.get(str(dtype).upper(), ColumnType.JSON)
            for name, dtype, _ in rows
            if name not in (DOCUMENT_COLUMN, PUBLISHED_COLUMN)
        }
        self._documents[table] = next(
            (
                "required" if null == "NO" else "optional"
                for n, _, null in rows
                if n == DOCUMENT_COLUMN
            ),
            "absent",
        )
        self._tables[table] = cols
        return dict(cols)

    def _evolve(self, table: str, shape: TableShape) -> bool:
        """Bring the table in line with the shape; True if it was created now (so empty)."""
        existing = self.columns(table)
        con = self.con
        if existing is None:
            defs = []
            for col in shape.ordered():
                null = " NOT NULL" if col.key else ""
                defs.append(f"{quote(col.name)} {col.type.value}{null}")
            if shape.store_document:
                # zstd: smaller and faster to write than DuckDB's default choice for whole
                # documents (bench/RESULTS.md, "flow_document compression").
                defs.append(f"{quote(DOCUMENT_COLUMN)} JSON NOT NULL USING COMPRESSION zstd")
            defs.append(f"{quote(PUBLISHED_COLUMN)} TIMESTAMPTZ NOT NULL")
            # No PRIMARY KEY: the merge (DELETE … USING the staged keys, then INSERT) keeps
            # keys unique, and a key index cost DuckDB more than it saved (bench/RESULTS.md).
            con.execute(f"CREATE TABLE {self._q(table)} ({', '.join(defs)})")
            self._tables[table] = {c.name: c.type for c in shape.columns.values()}
            self._keyed[table] = False
            self._documents[table] = "required" if shape.store_document else "absent"
            self._fresh.add(table)
            return True
        document = self._documents.get(table)
        if shape.store_document and document == "absent":
            # A table made without flow_document gets it back; older rows hold NULL.
            con.execute(f"ALTER TABLE {self._q(table)} ADD COLUMN {quote(DOCUMENT_COLUMN)} JSON")
            self._documents[table] = "optional"
        elif not shape.store_document and document == "required":
            # Left out from now on: the column stays, NULL in the rows committed without it.
            con.execute(
                f"ALTER TABLE {self._q(table)} ALTER COLUMN {quote(DOCUMENT_COLUMN)} DROP NOT NULL"
            )
            self._documents[table] = "optional"
        for col in shape.ordered():
            have = existing.get(col.name)
            if have is None:
                con.execute(
                    f"ALTER TABLE {self._q(table)} ADD COLUMN {quote(col.name)} {col.type.value}"
                )
                log.info("%s: added column %s %s", table, col.name, col.type.value)
            elif have is not col.type and col.type in (ColumnType.DOUBLE, ColumnType.HUGEINT):
                self._widen(table, shape, col.name, col.type, existing)
                log.info("%s: widened column %s to %s", table, col.name, col.type.value)
        self._tables[table] = {c.name: c.type for c in shape.columns.values()} | {
            k: v for k, v in existing.items() if k not in shape.columns
        }
        return False

    def keyed(self, table: str) -> bool:
        """Whether the table has a PRIMARY KEY: tables that earlier versions created have one."""
        known = self._keyed.get(table)
        if known is None:
            row = self.con.execute(
                "SELECT count(*) FROM duckdb_constraints() WHERE schema_name = ? "
                "AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
                [self.schema, table],
            ).fetchone()
            known = self._keyed[table] = bool(row and row[0])
        return known

    def _widen(
        self,
        table: str,
        shape: TableShape,
        name: str,
        type_: ColumnType,
        existing: dict[str, ColumnType],
    ) -> None:
        """Change a column's type; a key column of a table with a PRIMARY KEY is rebuilt.

        DuckDB cannot alter a column that is part of a primary key, so in a table created
        with one (older versions did) a key that grows past 64 bits gets a new table (same
        columns, the key column HUGEINT, no PRIMARY KEY) filled from the old one, in the
        commit's own transaction: nothing is lost if the commit fails.
        """
        con = self.con
        target = self._q(table)
        if type_ is ColumnType.DOUBLE and existing.get(name) is ColumnType.BIGINT:
            found = con.execute(
                f"SELECT {quote(name)} FROM {target} "
                f"WHERE {quote(name)}::DOUBLE::HUGEINT <> {quote(name)} LIMIT 1"
            ).fetchone()
            if found is not None:
                raise DestinationError(widening_refused(str(self.path), table, name, found[0]))
        if not (shape.columns[name].key and not shape.delta and self.keyed(table)):
            # Named before the change: once it fails, the transaction reads nothing more.
            indexes = [
                str(r[0])
                for r in con.execute(
                    "SELECT index_name FROM duckdb_indexes() "
                    "WHERE schema_name = ? AND table_name = ? ORDER BY 1",
                    [self.schema, table],
                ).fetchall()
            ]
            try:
                con.execute(f"ALTER TABLE {target} ALTER COLUMN {quote(name)} TYPE {type_.value}")
            except duckdb.CatalogException as exc:
                if "index" not in str(exc):
                    raise
                named = f"index {', '.join(indexes)}" if indexes else "an index"
                raise DestinationError(
                    f"{self.path}: column {name} of table {table} must widen to "
                    f"{type_.value} but {named} depends on it; drop it, run again, "
                    f"then create it again ({first_line(exc)})"
                ) from None
            return
        rows = con.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [self.schema, table],
        ).fetchall()
        defs = []
        for cname, ctype, nullable in rows:
            ctype = type_.value if cname == name else ctype
            defs.append(f"{quote(cname)} {ctype}{'' if nullable == 'YES' else ' NOT NULL'}")
        interim = self._q(f"{table}{REBUILD_SUFFIX}")
        con.execute(f"CREATE TABLE {interim} ({', '.join(defs)})")
        con.execute(f"INSERT INTO {interim} SELECT * FROM {target}")
        con.execute(f"DROP TABLE {target}")
        con.execute(f"ALTER TABLE {interim} RENAME TO {quote(table)}")
        existing[name] = type_
        self._keyed[table] = False
