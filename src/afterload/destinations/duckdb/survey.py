"""The survey of a transaction's lines in SQL, so that DuckDB parses them and Python does not.

The lines are staged in a file once; an in-memory DuckDB (never the destination's file, so a
survey runs while the previous commit holds the file) groups them as
:mod:`afterload.core.survey` describes, and :func:`~afterload.core.survey.judge` decides. When
the lines are usual, the writer reads the same staged file into the table (reduced by key in
SQL); otherwise the driver parses them in Python, the exact path.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import tempfile
from pathlib import Path

import duckdb
import orjson

from afterload.core.schema import ColumnType, TableShape
from afterload.core.survey import (
    ARRAY,
    BOOLEAN,
    DATE_PATTERN,
    DATE_TIME_PATTERN,
    FLOAT,
    INTEGER,
    ISO,
    MISSING,
    OBJECT,
    STRING,
    Group,
    Verdict,
    judge,
    surveyed_columns,
)
from afterload.core.transaction import StagedLines
from afterload.destinations.duckdb.connect import literal

log = logging.getLogger("afterload.survey")

SUSPECT = (
    r"[:,\[]\s*-?(?i:nan|inf)|,\s*[\]}]|[:,\[]\s*-?[0-9]+(\.[0-9]+)?[eE][+-]?[0-9]{3}"
    r"|[:,\[]\s*-?[0-9]{16}|\.0{200}"
)
"""Tokens after ``:``, ``,`` or ``[`` that DuckDB's reader takes and the exact path reads
otherwise: NaN and infinities, trailing commas, exponents of three digits (which may overflow a
double, or make a non-zero number read as 0), integers of 16 digits or more (which a DOUBLE may
round, or past 64 bits), and a fraction starting with 200 zeros (which may read as 0). A string
that happens to hold such text only costs its transaction the exact path."""
TYPES = {
    None: MISSING,
    "NULL": MISSING,
    "VARCHAR": STRING,
    "OBJECT": OBJECT,
    "ARRAY": ARRAY,
    "BOOLEAN": BOOLEAN,
    "DOUBLE": FLOAT,
    "UBIGINT": INTEGER,
    "BIGINT": INTEGER,
}
"""DuckDB's ``json_type`` as a value class (an integer is short: longer ones are suspect)."""

DEEP = 500
"""A line with this many brackets may nest past what the exact path reads: it reads it."""
BOM = b"\xef\xbb\xbf"
"""DuckDB's reader skips a byte-order mark at the start of a line; the exact path refuses it."""
PASSES = 3
"""Surveys of one transaction at most: the first may find new properties, the next types them."""


class Surveyor:
    """Surveys one binding's transactions; one in-memory DuckDB, opened on first use."""

    def __init__(self) -> None:
        self.stage_dir = Path(tempfile.mkdtemp(prefix="afterload-survey-"))
        """Its own folder: a staged file outlives the survey until its commit deletes it."""
        self._con: duckdb.DuckDBPyConnection | None = None
        self._names = itertools.count()

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        shutil.rmtree(self.stage_dir, ignore_errors=True)

    def survey(
        self,
        shape: TableShape,
        key_pointers: list[str],
        blocks: list[bytes],
        *,
        hard_delete: bool,
    ) -> StagedLines | None:
        """Stage and judge the lines (``blocks`` of lines joined by newlines); the staged
        file if usual (``shape`` then grown to fit them), else None and ``shape`` untouched."""
        expected = 0
        for data in blocks:
            if BOM in data:
                return None
            expected += data.count(b"\n") + 1
            if _blank_line(data):  # rare: only then are the lines split
                expected -= data.split(b"\n").count(b"")
        longest = max(map(len, blocks), default=0)
        """At least the longest line: DuckDB's reader only needs a bound."""
        if expected == 0:
            return None
        path = self.stage_dir / f"survey-{next(self._names)}.jsonl"
        with open(path, "wb") as f:
            for data in blocks:
                f.write(data)
                f.write(b"\n")
        try:
            staged = self._judge(
                path,
                shape,
                key_pointers,
                expected,
                longest,
                hard_delete,
                _first_names(blocks, shape),
            )
        except duckdb.Error as exc:
            # The reader refused a line (invalid JSON or UTF-8): the exact path words it.
            log.debug("survey: %s", str(exc).splitlines()[0])
            staged = None
        if staged is None:
            path.unlink(missing_ok=True)
        return staged

    def _judge(
        self,
        path: Path,
        shape: TableShape,
        key_pointers: list[str],
        expected: int,
        longest: int,
        hard_delete: bool,
        first_names: list[str],
    ) -> StagedLines | None:
        columns = (*surveyed_columns(shape), *first_names)
        ordered = False
        for _ in range(PASSES):
            groups = self._groups(path, shape, columns, longest, ordered=ordered)
            if sum(g.count for g in groups) != expected:
                return None  # a whitespace-only line, or lines the reader split otherwise
            judgement = judge(shape, key_pointers, columns, groups, hard_delete=hard_delete)
            several = len({g.names for g in groups}) > 1
            if judgement.verdict is Verdict.USUAL:
                assert judgement.shape is not None
                if (
                    not ordered
                    and several
                    and judgement.shape.columns.keys() != shape.columns.keys()
                ):
                    # New columns from lines naming them in more than one order: number the
                    # lines, so that they come in the order the exact path adds them.
                    ordered = True
                    continue
                shape.adopt(judgement.shape)
                return StagedLines(path, expected, longest)
            if judgement.verdict is Verdict.EXACT:
                log.debug("survey: the exact path (%s)", judgement.reason)
                return None
            columns, ordered = judgement.columns, several
        return None

    def _groups(
        self,
        path: Path,
        shape: TableShape,
        columns: tuple[str, ...],
        longest: int,
        *,
        ordered: bool,
    ) -> list[Group]:
        """One row per kind of line. Numbering the lines costs DuckDB its parallelism, so
        only a pass that must know which line came first (new columns) numbers them; with
        no new column, the judgement does not depend on the groups' order."""
        if self._con is None:
            self._con = duckdb.connect()
        pointers = ", ".join(literal(_pointer(n)) for n in columns)
        types = f"json_type(json, [{pointers}])" if columns else "[]::VARCHAR[]"
        dated = [n for n in columns if _dated(shape, n)]
        checks = ", ".join(_iso_check(shape, n) for n in dated)
        # CASE evaluates a branch only for the lines that reach it: the costly checks run
        # on long lines alone.
        suspect = (
            f"CASE WHEN regexp_matches(json, {literal(SUSPECT)}) THEN true "
            f"WHEN length(json) < {DEEP} THEN false "
            f"ELSE length(json) - length(translate(json, '[{{', '')) >= {DEEP} END"
        )
        size = max(16 << 20, longest + 1024)
        source = (
            f"read_json_objects({literal(str(path))}, format='newline_delimited', "
            f"maximum_object_size={size})"
        )
        if ordered:
            inner = f"SELECT row_number() OVER () - 1 AS i, json FROM {source}"
            first = "min(i), arg_min(json, i)::VARCHAR"
        else:
            inner = f"SELECT json FROM {source}"
            first = "0, any_value(json)::VARCHAR"
        rows = self._con.execute(
            f"SELECT json_keys(json), {types}, [{checks}]::BOOLEAN[], {suspect}, count(*), "
            f"{first} FROM ({inner}) GROUP BY ALL"
        ).fetchall()
        groups = []
        for names, kinds, iso, flagged, n, i, sample in rows:
            classes = [TYPES.get(kind, "?") for kind in kinds]
            for name, ok in zip(dated, iso, strict=True):
                at = columns.index(name)
                if classes[at] == STRING and ok:
                    classes[at] = ISO
            groups.append(
                Group(tuple(names), tuple(classes), bool(flagged), n, i, str(sample).encode())
            )
        return groups


def _pointer(name: str) -> str:
    """The JSON pointer of a top-level property (DuckDB reads ``/`` paths as pointers)."""
    return "/" + name.replace("~", "~0").replace("/", "~1")


def _dated(shape: TableShape, name: str) -> bool:
    col = shape.columns.get(name)
    return col is not None and col.type in (ColumnType.TIMESTAMPTZ, ColumnType.DATE)


def _iso_check(shape: TableShape, name: str) -> str:
    """Whether a date-time (or date) column's value is one both paths read alike."""
    ctype = shape.columns[name].type
    pattern = DATE_TIME_PATTERN if ctype is ColumnType.TIMESTAMPTZ else DATE_PATTERN
    x = f"CAST(json_extract(json, {literal(_pointer(name))}) AS VARCHAR)"
    return (
        f"coalesce(regexp_full_match({x}, {literal(pattern)}) AND "
        f"TRY_CAST({x}[2:-2] AS {ctype.value}) IS NOT NULL, false)"
    )


def _blank_line(data: bytes) -> bool:
    """Whether a block holds an empty line (the exact path skips it; the count would not)."""
    return not data or data.startswith(b"\n") or data.endswith(b"\n") or b"\n\n" in data


def _first_line(data: bytes) -> bytes:
    """The first non-empty line of a block, without copying the rest (blocks are large)."""
    start = 0
    while data.startswith(b"\n", start):
        start += 1
    end = data.find(b"\n", start)
    return data[start:] if end < 0 else data[start:end]


def _first_names(blocks: list[bytes], shape: TableShape) -> list[str]:
    """The first line's property names the shape lacks: surveyed from the first pass on, so
    that a table's first transaction usually needs one pass."""
    first = next((_first_line(data) for data in blocks if data.strip()), b"")
    try:
        doc = orjson.loads(first)
    except orjson.JSONDecodeError:
        return []
    return [n for n in doc if n not in shape.columns] if type(doc) is dict else []
