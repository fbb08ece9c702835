"""A transaction checked, reduced and stored by DuckDB in SQL, with the exact path as fallback.

Phase-1 prototype of issue 12, standalone so that it drops into ``destinations/duckdb/`` once
the new house (issue 10) stands. Python only joins the transaction's raw lines into a staging
file; DuckDB reads every line for its *signature* (``json_keys`` and ``json_type`` of each
known column: the SQL twin of :class:`~afterload.schema.TableShape`'s signature cache) and
once more to store it. The few distinct signatures are judged in Python by the exact path's
own :meth:`TableShape.observe` on representative documents, so the shape rules live in one
place. Anything the exact path might see differently sends the whole transaction back to it:

- DuckDB's reader (yyjson) accepts ``NaN``/``Infinity``/``1e400`` and trailing commas, which
  orjson rejects; it has no depth limit (orjson stops at 1024); it keeps the *first* of two
  duplicate names where orjson keeps the last. Each has a lexical or structural check below.
- ``json_type`` calls every non-negative integer ``UBIGINT``, so the int64 range (and
  the lead's HUGEINT rule) is a lexical check: any number token of 19 digits or more.
- Invalid UTF-8 (including encoded surrogates) and escaped lone surrogates make DuckDB's
  reader fail, which is a fallback too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson

from afterload.core.schema import ColumnType, LineProblem, TableShape

STAGE = "_afterload_stage"

# A number token in value position that is not an ordinary int64/double for orjson, or a
# trailing comma: NaN/Infinity in any spelling, 19+ integer digits (int64 range, HUGEINT),
# a three-digit exponent (overflow to infinity). Inside a string it only costs a fallback.
SUSPECT = r"[:,\[]\s*-?([0-9]{19}|[NnIi][AaNn][NnFf])|[0-9][eE][+-]?[0-9]{3}|,\s*[\]}]"
# orjson refuses nesting deeper than 1024; a line with fewer brackets than that cannot be.
DEPTH_BRACKETS = 1000
TIMESTAMP = (
    r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]([01][0-9]|2[0-3]):[0-5][0-9]"
    r":[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?"
)
DATE = r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"

# json_type's names → a representative value of the type orjson returns.
_SAMPLE: dict[str, Any] = {
    "UBIGINT": 0,
    "BIGINT": -1,
    "DOUBLE": 0.5,
    "VARCHAR": "2000-01-01",  # passes the date and date-time columns' checks too
    "BOOLEAN": False,
    "NULL": None,
    "OBJECT": {},
    "ARRAY": [],
}


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def stage_sql(path: Path, longest: int) -> str:
    """One column of raw lines, in file order (a temp table's rowid is its insertion order)."""
    size = max(16 << 20, longest + 1024)
    return (
        f"CREATE OR REPLACE TEMP TABLE {STAGE} AS SELECT json AS line FROM "
        f"read_json_objects({literal(str(path))}, format='newline_delimited', "
        f"maximum_object_size={size})"
    )


def path_list(names: list[str]) -> str | None:
    """A DuckDB list of JSON paths, one per name; None if a name needs escaping we avoid."""
    if any(not n or '"' in n or "\\" in n for n in names):
        return None
    return "[" + ", ".join(literal(f'$."{n}"') for n in names) + "]"


def signatures_sql(names: list[str], *, forbid_nul: bool = False) -> str:
    """Distinct (names, types of ``names``) with first line and count of unusual lines.

    One parse for ``json_keys`` and one for ``json_type`` over a list of paths: together the
    signature of the exact path (names in order, value types), for a fraction of the cost of
    ``json_structure``, which builds the whole nested structure.
    """
    paths = path_list(names)
    types = f"json_type(line, {paths})" if names else "[]::VARCHAR[]"
    # Grouping by the lists themselves costs twice as much as by one string; names are
    # JSON-quoted and types come from a fixed vocabulary, so the string is unambiguous.
    return (
        "SELECT any_value(k), any_value(ty), min(n) AS first, count(*) AS lines, "
        "count(*) FILTER (WHERE odd) AS odd FROM ("
        "SELECT n, k, ty, to_json(k)::VARCHAR || "
        "array_to_string(list_transform(ty, lambda x: coalesce(x, '')), ',') AS sig, odd FROM ("
        f"SELECT rowid AS n, json_keys(line) AS k, {types} AS ty, "
        f"regexp_matches(line, {literal(SUSPECT)}) "
        + ("OR contains(line, '\\u0000') " if forbid_nul else "")
        + f"OR (strlen(line) > {2 * DEPTH_BRACKETS} AND strlen(line) - "
        f"strlen(regexp_replace(line, '[\\[{{]', '', 'g')) >= {DEPTH_BRACKETS}) AS odd "
        f"FROM {STAGE})) GROUP BY sig ORDER BY first"
    )


@dataclass
class Verdict:
    """What the SQL checks found: ``fast`` or the reason the exact path must take it."""

    fast: bool
    reason: str = ""
    shape: TableShape | None = None
    """The shape after the transaction (a copy), when fast."""
    deletes: bool = False
    """Some line may be a ``_meta.op`` delete: the write must look at ``_meta``."""
    value_checks: list[tuple[str, str]] = field(default_factory=list)


class Unknown(Exception):
    """Names outside the list the types were read for: read them again with these too."""

    def __init__(self, names: list[str]) -> None:
        self.names = names


def judge(
    shape: TableShape,
    names: list[str],
    rows: Iterable[tuple[list[str], list[str | None], int, int, int]],
    *,
    unchecked_deletes: bool,
) -> Verdict:
    """Decide from the distinct signatures, in order of first line, as the exact path would.

    ``observe`` on a copy of the shape with a representative document per signature gives
    the same shape the exact path reaches: columns are added and widened at a signature's
    first line, and acceptance only grows as the shape grows. A signature the copy refuses,
    or one holding ``_meta`` when deletes skip the checks, goes back to the exact path.
    Raises :class:`Unknown` when a line has names whose types were not read.
    """
    rows = list(rows)
    index = {n: i for i, n in enumerate(names)}
    extra = [n for k, *_ in rows for n in k if n not in index]
    if extra:
        raise Unknown(list(dict.fromkeys([*names, *extra])))
    trial = shape.snapshot()
    deletes = False
    for keys, types, _first, _lines, odd in rows:
        if odd:
            return Verdict(False, "a line looks unusual to the lexical checks")
        if len(set(keys)) != len(keys):
            return Verdict(False, "duplicate names")
        if "_meta" in keys:
            deletes = True
            if unchecked_deletes:
                return Verdict(False, "_meta with unchecked deletes")
        doc = {name: _SAMPLE.get(types[index[name]] or "", _NO) for name in keys}
        if any(v is _NO for v in doc.values()):
            return Verdict(False, "a type the checks do not know")
        for key in shape.key:
            if key not in doc or types[index[key]] not in ("UBIGINT", "BIGINT", "VARCHAR"):
                return Verdict(False, "key type")
        try:
            trial.observe(doc)
        except LineProblem as exc:
            return Verdict(False, exc.reason)
    checks = [
        (c.name, TIMESTAMP if c.type is ColumnType.TIMESTAMPTZ else DATE)
        for c in trial.columns.values()
        if c.type in (ColumnType.TIMESTAMPTZ, ColumnType.DATE)
    ]
    return Verdict(True, shape=trial, deletes=deletes, value_checks=checks)


_NO = object()


def value_check_sql(checks: list[tuple[str, str]]) -> str | None:
    """Lines whose date/date-time strings might parse differently in Python and DuckDB."""
    if not checks:
        return None
    conds = []
    for name, pattern in checks:
        kind = "TIMESTAMPTZ" if pattern is TIMESTAMP else "DATE"
        path = literal("$." + quote(name))
        value = f"json_extract_string(line, {path})"
        conds.append(
            f"(json_type(line, {path}) NOT IN ('NULL', 'VARCHAR') OR NOT "
            f"coalesce(regexp_full_match({value}, {literal(pattern)}) "
            f"AND NOT starts_with({value}, '0000') "
            f"AND try_cast({value} AS {kind}) IS NOT NULL, true))"
        )
    return f"SELECT count(*) FROM {STAGE} WHERE " + " OR ".join(conds)


def reduced_sql(shape: TableShape, *, delta: bool, hard_delete: bool, deletes: bool) -> str:
    """The transaction reduced to the last line per key: rowid, line, typed struct, delete."""
    names = [c.name for c in shape.ordered()]
    structure = {n: shape.columns[n].type.value for n in names}
    if deletes:
        structure.setdefault("_meta", "JSON")
    s = f"json_transform(line, {literal(orjson.dumps(structure).decode())})"
    if deletes and hard_delete and not delta:
        delete = (
            "coalesce(json_type(s._meta) = 'OBJECT' AND json_type(s._meta, '$.op') = 'VARCHAR' "
            "AND json_extract_string(s._meta, '$.op') = 'd', false)"
        )
    else:
        delete = "false"
    inner = f"SELECT rowid AS n, line, {s} AS s FROM {STAGE}"
    if delta or not shape.key:
        return f"SELECT n, line, s, false AS is_delete FROM ({inner})"
    part = ", ".join(f"s[{literal(k)}]" for k in shape.key)
    return (
        f"SELECT n, line, s, {delete} AS is_delete FROM ({inner}) "
        f"QUALIFY row_number() OVER (PARTITION BY {part} ORDER BY n DESC) = 1"
    )


def check(
    con: duckdb.DuckDBPyConnection,
    stage: Path,
    longest: int,
    shape: TableShape,
    *,
    unchecked_deletes: bool,
    forbid_nul: bool = False,
) -> Verdict:
    """Stage the file and judge it; the caller writes (fast) or runs the exact path."""
    try:
        con.execute(stage_sql(stage, longest))
    except duckdb.Error as exc:
        return Verdict(False, f"DuckDB's reader refused a line ({str(exc).splitlines()[0]})")
    names = [c.name for c in shape.ordered()]
    while True:
        if path_list(names) is None:
            return Verdict(False, "a property name the checks do not quote")
        rows = con.execute(signatures_sql(names, forbid_nul=forbid_nul)).fetchall()
        try:
            verdict = judge(shape, names, rows, unchecked_deletes=unchecked_deletes)
        except Unknown as exc:
            names = exc.names
            continue
        break
    if verdict.fast:
        sql = value_check_sql(verdict.value_checks)
        if sql is not None:
            found = con.execute(sql).fetchone()
            if found is not None and found[0]:
                return Verdict(False, "a date or date-time value to check in Python")
    return verdict


def stage_lines(path: Path, lines: list[bytes]) -> int:
    """Write the raw lines; the longest line's length, for DuckDB's reader."""
    with open(path, "wb") as f:
        f.write(b"\n".join(lines))
        f.write(b"\n")
    return max(map(len, lines), default=0)


def lexical_suspect(raw: bytes) -> bool:
    """The SUSPECT pattern in Python, for tests that show what it catches."""
    return re.search(SUSPECT.encode(), raw) is not None


REDUCED = "_afterload_reduced"


def reduce_sql(shape: TableShape, verdict: Verdict, *, delta: bool, hard_delete: bool) -> str:
    return f"CREATE OR REPLACE TEMP TABLE {REDUCED} AS " + reduced_sql(
        shape, delta=delta, hard_delete=hard_delete, deletes=verdict.deletes
    )


def merge_sql(
    table: str, shape: TableShape, verdict: Verdict, stamp: str, *, keyed: str, hard_delete: bool
) -> list[str]:
    """Statements that apply the transaction to ``table`` (already evolved).

    ``keyed`` is how uniqueness is held: ``"none"`` (an empty table or delta updates: insert
    the reduced rows straight from the stage, nothing materialized), ``"delete"`` (no primary
    key: reduce into a temp table, delete every staged key, then insert the upserts) or
    ``"replace"`` (a primary key: ``INSERT OR REPLACE``; deletes still by ``DELETE``).
    """
    cols = [c.name for c in shape.ordered()]
    target = ", ".join([*(quote(c) for c in cols), "flow_document", "flow_published_at"])
    values = ", ".join([*(f"s[{literal(c)}]" for c in cols), "line", f"{literal(stamp)}"])
    reduced = reduced_sql(
        shape, delta=shape.delta, hard_delete=hard_delete, deletes=verdict.deletes
    )
    if keyed == "none":
        return [
            f"INSERT INTO {table} ({target}) SELECT {values} FROM ({reduced}) WHERE NOT is_delete"
        ]
    cond = " AND ".join(f"t.{quote(k)} = r.s[{literal(k)}]" for k in shape.key)
    out = [f"CREATE OR REPLACE TEMP TABLE {REDUCED} AS {reduced}"]
    if keyed == "delete":
        out.append(f"DELETE FROM {table} t USING {REDUCED} r WHERE {cond}")
    else:
        out.append(f"DELETE FROM {table} t USING {REDUCED} r WHERE r.is_delete AND {cond}")
    verb = "INSERT OR REPLACE" if keyed == "replace" else "INSERT"
    out.append(f"{verb} INTO {table} ({target}) SELECT {values} FROM {REDUCED} WHERE NOT is_delete")
    return out


@dataclass
class Reduced:
    """The fast path's result in the combiner's terms, for comparison with the exact path."""

    verdict: Verdict
    rows: list[bytes]
    deletes: list[bytes]


def take(
    con: duckdb.DuckDBPyConnection,
    workdir: Path,
    lines: list[bytes],
    shape: TableShape,
    *,
    delta: bool,
    hard_delete: bool,
) -> Reduced:
    """Check and reduce ``lines`` in SQL without writing a table (what tests compare)."""
    stage = workdir / "stage.jsonl"
    longest = stage_lines(stage, lines)
    unchecked = hard_delete and not delta
    verdict = check(con, stage, longest, shape, unchecked_deletes=unchecked)
    if not verdict.fast:
        return Reduced(verdict, [], [])
    assert verdict.shape is not None
    count = con.execute(f"SELECT count(*) FROM {STAGE}").fetchone()
    if count is None or count[0] == 0:  # only blank lines, which both paths skip
        return Reduced(verdict, [], [])
    con.execute(reduce_sql(verdict.shape, verdict, delta=delta, hard_delete=hard_delete))
    rows = con.execute(f"SELECT line, is_delete FROM {REDUCED} ORDER BY n").fetchall()
    return Reduced(
        verdict,
        [r[0].encode() for r in rows if not r[1]],
        [r[0].encode() for r in rows if r[1]],
    )
