"""One binding's rows into its table: staged NDJSON parsed by DuckDB in its own threads."""

from __future__ import annotations

import os
from pathlib import Path

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
        document = [quote(DOCUMENT_COLUMN)] if shape.store_document else []
        target = ", ".join([*(quote(c) for c in cols), *document, quote(PUBLISHED_COLUMN)])
        values = ", ".join(
            [
                *(f"s[{literal(c)}]" for c in cols),
                *(["json"] if document else []),
                f"{literal(published_at)}::TIMESTAMPTZ",
            ]
        )
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

    def _clear_stage(self) -> None:
        if self._stage_dir is not None:
            for entry in os.scandir(self._stage_dir):
                Path(entry.path).unlink()
