"""One binding's rows into its table: staged NDJSON parsed by DuckDB in its own threads."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import duckdb
import orjson

from afterload.core.schema import DOCUMENT_COLUMN, PUBLISHED_COLUMN, TableShape
from afterload.destinations.base import (
    TableWrite,
)
from afterload.destinations.duckdb.catalog import Catalog
from afterload.destinations.duckdb.connect import literal
from afterload.destinations.sql import quote


class Writer(Catalog):
    """Writes one binding's rows inside the commit's transaction."""

    _stage_dir: Path | None

    def _stage(self, name: str, lines: list[bytes]) -> Path:
        assert self._stage_dir is not None
        path = self._stage_dir / name
        with open(path, "wb") as f:
            f.write(b"\n".join(lines))
            f.write(b"\n")
        return path

    def _select(self, stage: Path, shape: TableShape, names: list[str], longest: int) -> str:
        """Each column as ``s[name]``: top-level properties from one ``json_transform``, a
        nested key (``a/b``) by its JSON pointer, which DuckDB reads with its escapes."""
        top = {n: shape.columns[n].type.value for n in names if n not in shape.projections}
        fields = []
        if top:
            fields.append(f"json_transform(json, {literal(orjson.dumps(top).decode())})")
        for n in names:
            if n in shape.projections:
                kind = literal(orjson.dumps(shape.columns[n].type.value).decode())
                value = f"json_transform(json_extract(json, {literal(shape.pointers[n])}), {kind})"
                fields.append(f"struct_pack({quote(n)} := {value})")
        size = max(16 << 20, longest + 1024)
        struct = fields[0] if len(fields) == 1 else f"struct_concat({', '.join(fields)})"
        return (
            f"SELECT {struct} AS s, json "
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
        if write.staged is not None:
            self._write_staged(write, published_at, created)
            return
        if not write.upserts:
            return
        stage = self._stage(f"{index}-rows.jsonl", write.upserts)
        cols = [c.name for c in shape.ordered()]
        longest = max(map(len, write.upserts))
        sub = self._select(stage, shape, cols, longest)
        target, values = self._row(write, published_at)
        if shape.delta or not shape.key or created:
            verb = "INSERT"
        elif self.keyed(write.table):
            verb = "INSERT OR REPLACE" if self._overlaps(table, stage, shape, longest) else "INSERT"
        else:
            # The merge: the staged rows are one per key (reduced by the transaction), so
            # deleting every row with a staged key and inserting them keeps keys unique.
            staged = self._select(stage, shape, shape.key, longest)
            cond = " AND ".join(f"{table}.{quote(k)} = d.s[{literal(k)}]" for k in shape.key)
            con.execute(f"DELETE FROM {table} USING ({staged}) d WHERE {cond}")
            verb = "INSERT"
        con.execute(f"{verb} INTO {table} ({target}) SELECT {values} FROM ({sub})")

    def _row(self, write: TableWrite, published_at: str) -> tuple[str, str]:
        """The target columns of a row and the values for them from ``(s, json)``."""
        shape = write.shape
        cols = [c.name for c in shape.ordered()]
        document = [quote(DOCUMENT_COLUMN)] if shape.store_document else []
        target = ", ".join([*(quote(c) for c in cols), *document, quote(PUBLISHED_COLUMN)])
        source_document = "json -> '$.flow_document'" if write.embedded_document else "json"
        values = ", ".join(
            [
                *(f"s[{literal(c)}]" for c in cols),
                *([source_document] if document else []),
                f"{literal(published_at)}::TIMESTAMPTZ",
            ]
        )
        return target, values

    def _write_staged(self, write: TableWrite, published_at: str, created: bool) -> None:
        """Lines a survey found usual: DuckDB reads the staged file into the table as it is,
        then keeps the last line of each key (rows are appended in line order, so the
        newest row of a key has the highest ``rowid``) and removes the key's older rows."""
        staged = write.staged
        assert staged is not None
        con = self.con
        shape = write.shape
        table = self._q(write.table)
        cols = [c.name for c in shape.ordered()]
        sub = self._select(staged.path, shape, cols, staged.longest)
        target, values = self._row(write, published_at)
        merged = bool(shape.key) and not shape.delta
        if not merged:
            write.written = _count(
                con.execute(f"INSERT INTO {table} ({target}) SELECT {values} FROM ({sub})")
            )
            return
        if self.keyed(write.table) or self._indexed(write.table) or _shadows_rowid(shape):
            # A column named rowid hides DuckDB's row numbers, which the merge below needs.
            self._replace_staged(write, sub, target, values)
            return
        before = _count(con.execute(f"SELECT coalesce(max(rowid), -1) FROM {table}"))
        if before >= 0 and write.table not in self._fresh and self._repeats(write):
            sub = _last_per_key(sub, shape.key)
        inserted = _count(
            con.execute(f"INSERT INTO {table} ({target}) SELECT {values} FROM ({sub})")
        )
        write.written = inserted
        keys = ", ".join(quote(k) for k in shape.key)
        r = quote(_spare(shape, "r"))
        new = f"SELECT rowid AS {r}, {keys} FROM {table} WHERE rowid > {before}"
        distinct = _count(
            con.execute(f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM ({new}))")
        )
        if distinct != inserted:
            # Keys repeated within the transaction (the probe did not see it, or did not run):
            # the last line of each wins. Deleting rows of the transaction's own makes DuckDB's
            # commit slower than reducing first, so the table is probed from now on.
            self._fresh.discard(write.table)
            con.execute(
                f"DELETE FROM {table} WHERE rowid > {before} AND rowid NOT IN "
                f"(SELECT max({r}) FROM ({new}) GROUP BY {keys})"
            )
            write.written = distinct
        if not created and before >= 0:
            cond = " AND ".join(f"{table}.{quote(k)} = n.{quote(k)}" for k in shape.key)
            con.execute(
                f"DELETE FROM {table} USING ({new}) n WHERE {table}.rowid <= {before} AND {cond}"
            )

    def _repeats(self, write: TableWrite) -> bool:
        """A probe of the staged lines: whether a key's text comes twice. A hint only (``1``
        and ``1.0`` are one key with two texts): the insert checks the typed keys anyway."""
        staged = write.staged
        assert staged is not None
        shape = write.shape
        texts = [f"json_value(json, {literal(shape.pointers[k])})" for k in shape.key]
        key = texts[0] if len(texts) == 1 else f"[{', '.join(texts)}]"
        size = max(16 << 20, staged.longest + 1024)
        row = self.con.execute(
            f"SELECT count(*) - count(DISTINCT {key}) FROM read_json_objects("
            f"{literal(str(staged.path))}, format='newline_delimited', maximum_object_size={size})"
        ).fetchone()
        return bool(row and row[0])

    def _replace_staged(self, write: TableWrite, sub: str, target: str, values: str) -> None:
        """A table with a PRIMARY KEY (made by an older version), a unique index a user
        added (an index checks each row as it is inserted) or a column named ``rowid`` (the
        merge by row number cannot run): reduce first, then replace (or delete the staged
        keys, then insert)."""
        con = self.con
        table = self._q(write.table)
        shape = write.shape
        reduced = _last_per_key(sub, shape.key)
        if self.keyed(write.table):
            write.written = _count(
                con.execute(
                    f"INSERT OR REPLACE INTO {table} ({target}) SELECT {values} FROM ({reduced})"
                )
            )
            return
        con.execute(f"CREATE OR REPLACE TEMP TABLE _afterload_reduced AS {reduced}")
        try:
            cond = " AND ".join(f"{table}.{quote(k)} = d.s[{literal(k)}]" for k in shape.key)
            con.execute(f"DELETE FROM {table} USING _afterload_reduced d WHERE {cond}")
            write.written = _count(
                con.execute(
                    f"INSERT INTO {table} ({target}) SELECT {values} FROM _afterload_reduced"
                )
            )
        finally:
            con.execute("DROP TABLE IF EXISTS _afterload_reduced")

    def _indexed(self, table: str) -> bool:
        """Whether a user added an index to the table (asked each commit: one may be added
        between runs)."""
        row = self.con.execute(
            "SELECT count(*) FROM duckdb_indexes() WHERE schema_name = ? AND table_name = ?",
            [self.schema, table],
        ).fetchone()
        return bool(row and row[0])

    def _overlaps(self, table: str, stage: Path, shape: TableShape, longest: int) -> bool:
        """Whether any staged key is already in a table with a PRIMARY KEY.

        ``INSERT OR REPLACE`` costs about twice a plain ``INSERT`` in DuckDB even when nothing
        conflicts, so a backfill into a keyed table that already has rows probes its keys
        first: reading them again is much cheaper. The staged rows have distinct keys
        (reduced by key), so with no overlap both give the same table.
        """
        keys = shape.key
        sub = self._select(stage, shape, keys, longest)
        cond = " AND ".join(f"{table}.{quote(k)} = d.s[{literal(k)}]" for k in keys)
        hit = self.con.execute(f"SELECT 1 FROM ({sub}) d JOIN {table} ON {cond} LIMIT 1")
        return hit.fetchone() is not None

    def load_documents(self, table: str, shape: TableShape, keys: list[bytes]) -> list[str]:
        """Stage the keys as NDJSON and join them against the table in one query."""
        if not keys or self.columns(table) is None:
            return []
        stage = self._stage("loads.jsonl", keys)
        try:
            names = shape.key
            sub = self._select(stage, shape, names, max(map(len, keys)))
            target = self._q(table)
            cond = " AND ".join(f"t.{quote(k)} = d.s[{literal(k)}]" for k in names)
            rows = self.con.execute(
                f"SELECT t.{quote(DOCUMENT_COLUMN)}::VARCHAR FROM {target} t "
                f"JOIN ({sub}) d ON {cond}"
            ).fetchall()
        finally:
            self._clear_stage()
        return [str(r[0]) for r in rows]

    def _clear_stage(self, writes: Sequence[TableWrite] = ()) -> None:
        for write in writes:
            if write.staged is not None:
                write.staged.path.unlink(missing_ok=True)
        if self._stage_dir is not None:
            for entry in os.scandir(self._stage_dir):
                Path(entry.path).unlink()


def _shadows_rowid(shape: TableShape) -> bool:
    """Whether a column is named ``rowid`` (DuckDB resolves names in any case): DuckDB then
    reads the column where the merge means its row numbers."""
    return any(name.casefold() == "rowid" for name in shape.columns)


def _spare(shape: TableShape, name: str) -> str:
    """``name``, or a longer one no column of the table has (an alias beside its columns)."""
    taken = {n.casefold() for n in shape.columns}
    while name.casefold() in taken:
        name = f"_{name}"
    return name


def _last_per_key(sub: str, key: list[str]) -> str:
    """The staged rows reduced to the last line of each key (lines come in file order)."""
    keys = ", ".join(f"s[{literal(k)}]" for k in key)
    return (
        f"SELECT s, json FROM (SELECT s, json, row_number() OVER () AS n FROM ({sub})) "
        f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY n DESC) = 1"
    )


def _count(result: duckdb.DuckDBPyConnection) -> int:
    row = result.fetchone()
    return int(row[0]) if row else 0
