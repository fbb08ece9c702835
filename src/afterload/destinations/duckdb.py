"""DuckDB: tables and checkpoint in one embedded database file.

Rows reach DuckDB in bulk: each commit writes the reduced lines of a binding to a staging NDJSON
file, and one ``INSERT … SELECT json_transform(…) FROM read_json_objects(…)`` per binding parses
them in DuckDB's own threads, keeping the raw line as ``flow_document``. Row-by-row inserts from
Python are an order of magnitude slower. The documents were already checked against the table
shape in Python, so DuckDB's silent conversions never get a say.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson

from afterload.core.checkpoint import Checkpoint
from afterload.core.schema import DOCUMENT_COLUMN, PUBLISHED_COLUMN, ColumnType, TableShape
from afterload.destinations.base import (
    DestinationError,
    FencedError,
    LockedError,
    Recovered,
    TableWrite,
)

log = logging.getLogger("afterload.duckdb")

CHECKPOINTS = "_afterload_checkpoints"

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


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _locked_message(path: Path, exc: Exception) -> str:
    pid = re.search(r"PID (\d+)", str(exc))
    who = f" (pid {pid.group(1)})" if pid else ""
    return f"another afterload process{who} holds {path}; stop it or use another database file"


def connect(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the file, turning DuckDB's lock error into one sentence."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise LockedError(_locked_message(path, exc)) from None
        raise DestinationError(f"cannot open {path}: {exc}") from None


class DuckDBDestination:
    """Implements :class:`afterload.destinations.base.Destination` on a DuckDB file."""

    stores_nul = True
    wide_ints: int | None = 128

    def __init__(
        self, path: Path, schema: str = "main", *, memory_limit: str | None = None
    ) -> None:
        self.path = path
        self.schema = schema
        self.memory_limit = memory_limit
        self.name = str(path)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._materialization: str | None = None
        self._fence = 0
        self._tables: dict[str, dict[str, ColumnType]] = {}
        self._stage_dir: Path | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise DestinationError(f"{self.path} is not open")
        return self._con

    def _q(self, table: str) -> str:
        return f"{quote(self.schema)}.{quote(table)}"

    def open(self, materialization: str) -> Recovered:
        if self._con is None:
            self._con = connect(self.path)
        con = self.con
        if self.memory_limit is not None:
            con.execute(f"SET memory_limit = {literal(self.memory_limit)}")
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(self.schema)}")
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {self._q(CHECKPOINTS)} ("
            "materialization VARCHAR PRIMARY KEY, fence BIGINT NOT NULL, "
            "checkpoint VARCHAR NOT NULL, committed_at TIMESTAMPTZ, "
            "transactions BIGINT NOT NULL)"
        )
        try:
            con.begin()
            con.execute(
                f"INSERT INTO {self._q(CHECKPOINTS)} VALUES (?, 0, '{{}}', NULL, 0) "
                "ON CONFLICT DO NOTHING",
                [materialization],
            )
            row = con.execute(
                f"UPDATE {self._q(CHECKPOINTS)} SET fence = fence + 1 WHERE materialization = ? "
                "RETURNING fence, checkpoint, epoch_us(committed_at), transactions",
                [materialization],
            ).fetchone()
            con.commit()
        except duckdb.TransactionException as exc:
            self._rollback()
            raise FencedError(
                f"materialization {materialization!r} in {self.path} is being opened by "
                f"another process ({exc})"
            ) from None
        assert row is not None
        self._materialization = materialization
        self._fence = int(row[0])
        self._stage_dir = Path(tempfile.mkdtemp(prefix="afterload-stage-"))
        return Recovered(
            checkpoint=Checkpoint.from_json(row[1]),
            fence=self._fence,
            committed_at=_from_epoch_us(row[2]),
            transactions=int(row[3]),
        )

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        if self._stage_dir is not None:
            shutil.rmtree(self._stage_dir, ignore_errors=True)
            self._stage_dir = None

    def _rollback(self) -> None:
        with contextlib.suppress(duckdb.Error):
            self.con.rollback()
        self._tables.clear()  # DDL rolled back too: read the catalog again

    # -- tables ------------------------------------------------------------------------------

    def columns(self, table: str) -> dict[str, ColumnType] | None:
        cached = self._tables.get(table)
        if cached is not None:
            return dict(cached)
        rows = self.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [self.schema, table],
        ).fetchall()
        if not rows:
            return None
        cols = {
            str(name): _DUCKDB_TYPES.get(str(dtype).upper(), ColumnType.JSON)
            for name, dtype in rows
            if name not in (DOCUMENT_COLUMN, PUBLISHED_COLUMN)
        }
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
            defs.append(f"{quote(DOCUMENT_COLUMN)} JSON NOT NULL")
            defs.append(f"{quote(PUBLISHED_COLUMN)} TIMESTAMPTZ NOT NULL")
            if not shape.delta and shape.key:
                defs.append(f"PRIMARY KEY ({', '.join(quote(k) for k in shape.key)})")
            con.execute(f"CREATE TABLE {self._q(table)} ({', '.join(defs)})")
            self._tables[table] = {c.name: c.type for c in shape.columns.values()}
            return True
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

    def _widen(
        self,
        table: str,
        shape: TableShape,
        name: str,
        type_: ColumnType,
        existing: dict[str, ColumnType],
    ) -> None:
        """Change a column's type; a key column is rebuilt with its table.

        DuckDB cannot alter a column that is part of a primary key, so a key that grows past
        64 bits gets a new table (same columns, the key column HUGEINT) filled from the old
        one, in the commit's own transaction: nothing is lost if the commit fails.
        """
        con = self.con
        target = self._q(table)
        if not (shape.columns[name].key and not shape.delta):
            con.execute(f"ALTER TABLE {target} ALTER COLUMN {quote(name)} TYPE {type_.value}")
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
        defs.append(f"PRIMARY KEY ({', '.join(quote(k) for k in shape.key)})")
        interim = self._q(f"{table}__afterload_rebuild")
        con.execute(f"CREATE TABLE {interim} ({', '.join(defs)})")
        con.execute(f"INSERT INTO {interim} SELECT * FROM {target}")
        con.execute(f"DROP TABLE {target}")
        con.execute(f"ALTER TABLE {interim} RENAME TO {quote(table)}")
        existing[name] = type_

    # -- commits -----------------------------------------------------------------------------

    def _stage(self, name: str, lines: list[bytes]) -> Path:
        assert self._stage_dir is not None
        path = self._stage_dir / name
        with open(path, "wb") as f:
            f.write(b"\n".join(lines))
            f.write(b"\n")
        return path

    def _select(self, stage: Path, shape: TableShape, names: list[str], longest: int) -> str:
        structure = orjson.dumps({n: shape.columns[n].type.value for n in names}).decode()
        size = max(16 << 20, longest + 1024)
        return (
            f"SELECT json_transform(json, {literal(structure)}) AS s, json "
            f"FROM read_json_objects({literal(str(stage))}, format='newline_delimited', "
            f"maximum_object_size={size})"
        )

    def _write(self, write: TableWrite, published_at: str, index: int) -> None:
        con = self.con
        shape = write.shape
        created = self._evolve(write.table, shape)
        table = self._q(write.table)
        if write.deletes:
            stage = self._stage(f"{index}-deletes.jsonl", write.deletes)
            keys = shape.key
            sub = self._select(stage, shape, keys, max(map(len, write.deletes)))
            cond = " AND ".join(f"{table}.{quote(k)} = d.s[{literal(k)}]" for k in keys)
            con.execute(f"DELETE FROM {table} USING ({sub}) d WHERE {cond}")
        if not write.upserts:
            return
        stage = self._stage(f"{index}-rows.jsonl", write.upserts)
        cols = [c.name for c in shape.ordered()]
        longest = max(map(len, write.upserts))
        sub = self._select(stage, shape, cols, longest)
        target = ", ".join(
            [*(quote(c) for c in cols), quote(DOCUMENT_COLUMN), quote(PUBLISHED_COLUMN)]
        )
        values = ", ".join(
            [*(f"s[{literal(c)}]" for c in cols), "json", f"{literal(published_at)}::TIMESTAMPTZ"]
        )
        replace = (
            not shape.delta
            and bool(shape.key)
            and not created
            and self._overlaps(table, stage, shape, longest)
        )
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        con.execute(f"{verb} INTO {table} ({target}) SELECT {values} FROM ({sub})")

    def _overlaps(self, table: str, stage: Path, shape: TableShape, longest: int) -> bool:
        """Whether any staged key is already in the table.

        ``INSERT OR REPLACE`` costs about twice a plain ``INSERT`` in DuckDB even when nothing
        conflicts, so a backfill into a table that already has rows (every transaction after
        the first) probes its keys first: reading them again is much cheaper. The staged
        rows have distinct keys (reduced by key), so with no overlap both give the same table.
        """
        keys = shape.key
        sub = self._select(stage, shape, keys, longest)
        cond = " AND ".join(f"{table}.{quote(k)} = d.s[{literal(k)}]" for k in keys)
        hit = self.con.execute(f"SELECT 1 FROM ({sub}) d JOIN {table} ON {cond} LIMIT 1")
        return hit.fetchone() is not None

    def commit(
        self, writes: list[TableWrite], checkpoint: Checkpoint, published_at: datetime
    ) -> None:
        con = self.con
        stamp = published_at.astimezone(UTC).isoformat()
        try:
            con.begin()
            for index, write in enumerate(writes):
                self._write(write, stamp, index)
            row = con.execute(
                f"UPDATE {self._q(CHECKPOINTS)} SET checkpoint = ?, "
                "committed_at = ?::TIMESTAMPTZ, transactions = transactions + 1 "
                "WHERE materialization = ? AND fence = ? RETURNING fence",
                [checkpoint.to_json(), stamp, self._materialization, self._fence],
            ).fetchall()
            if len(row) != 1:
                raise FencedError(self._fenced_message())
            con.commit()
        except FencedError:
            self._rollback()
            raise
        except duckdb.TransactionException as exc:
            self._rollback()
            if "conflict" in str(exc).lower():
                raise FencedError(self._fenced_message()) from None
            raise DestinationError(f"{self.path}: the commit failed: {exc}") from None
        except duckdb.Error as exc:
            self._rollback()
            raise DestinationError(f"{self.path}: the commit failed: {_first_line(exc)}") from None
        finally:
            self._clear_stage()

    def _clear_stage(self) -> None:
        if self._stage_dir is not None:
            for entry in os.scandir(self._stage_dir):
                os.unlink(entry.path)

    def _fenced_message(self) -> str:
        return (
            f"materialization {self._materialization!r} in {self.path} was opened by another "
            "process after this one; this one stops without committing"
        )


class DuckDBStatus:
    """Read-only access for ``afterload status``."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        self.schema = schema
        self.name = str(path)
        self.con = connect(path, read_only=True)

    def read_checkpoint(self, materialization: str) -> Recovered | None:
        try:
            row = self.con.execute(
                f"SELECT fence, checkpoint, epoch_us(committed_at), transactions "
                f"FROM {quote(self.schema)}.{quote(CHECKPOINTS)} WHERE materialization = ?",
                [materialization],
            ).fetchone()
        except duckdb.CatalogException:
            return None
        if row is None:
            return None
        return Recovered(
            checkpoint=Checkpoint.from_json(row[1]),
            fence=int(row[0]),
            committed_at=_from_epoch_us(row[2]),
            transactions=int(row[3]),
        )

    def row_count(self, table: str) -> int | None:
        try:
            row = self.con.execute(
                f"SELECT count(*) FROM {quote(self.schema)}.{quote(table)}"
            ).fetchone()
        except duckdb.CatalogException:
            return None
        return None if row is None else int(row[0])

    def close(self) -> None:
        self.con.close()


def _from_epoch_us(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(int(value) / 1_000_000, tz=UTC)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
