"""Judging a transaction from a survey of its lines, so that no line is parsed in Python.

A destination that reads JSON itself (DuckDB) surveys a transaction's lines in SQL: it groups
them by their top-level property names (in text order, repeats kept) and by a *class* of each
known column's value, flags lines a lexical check finds suspect, and returns one group per
kind of line with its first line. This module decides, from those groups alone, whether every
line is one the exact path (:class:`~afterload.core.documents.DocumentParser`) would accept
without a word. It does so by running the exact path itself on each group's first line, on a
copy of the table shape, in first-line order, and by refusing every class whose acceptance
would depend on the value rather than its kind. Anything unusual — a bad line, a repeated
name, an integer the exact path must read itself, a date-time the exact path may word
differently — sends the whole transaction to the exact path, which words errors with file and
line. Both paths therefore give the same table, rejects and errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from afterload.core.documents import DocumentParser
from afterload.core.schema import ColumnType, LineProblem, TableShape

# Value classes, computed per known column by the survey (SQL) from the value's JSON type.
MISSING = "n"
"""Absent or null: the exact path skips it (a key's absence is judged by the first line)."""
STRING = "s"
ISO = "T"
"""A string that a date-time (or date) column reads the same in Python and in the destination:
the survey's strict pattern and the destination's own cast both accepted it."""
OBJECT = "o"
ARRAY = "a"
BOOLEAN = "b"
INTEGER = "i"
"""An integer of at most 15 digits (the survey flags longer number tokens as suspect): exact as
a DOUBLE, inside 64 bits, so its acceptance never depends on its value."""
FLOAT = "f"
"""A number with a fraction or an exponent."""

CLASSES = frozenset({MISSING, STRING, ISO, OBJECT, ARRAY, BOOLEAN, INTEGER, FLOAT})

DATE_TIME_PATTERN = (
    r'^"([1-9][0-9]{3}|0[0-9]{2}[1-9]|0[0-9][1-9][0-9]|0[1-9][0-9]{2})-(0[1-9]|1[0-2])-'
    r"(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
    r'(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"$'
)
"""Date-times written as RFC 3339 (``T``, seconds, up to microseconds, ``Z`` or an offset):
read alike by Python's ``datetime.fromisoformat`` and DuckDB, when the date exists."""
DATE_PATTERN = (
    r'^"([1-9][0-9]{3}|0[0-9]{2}[1-9]|0[0-9][1-9][0-9]|0[1-9][0-9]{2})-(0[1-9]|1[0-2])-'
    r'(0[1-9]|[12][0-9]|3[01])"$'
)


@dataclass(frozen=True, slots=True)
class Group:
    """Lines alike: the same names in the same order, the same value classes, the same flag."""

    names: tuple[str, ...]
    """Top-level property names in text order, a repeated one as often as it is written."""
    classes: tuple[str, ...]
    """One class per surveyed column (:attr:`Survey.columns` order)."""
    suspect: bool
    """A lexical check flagged one of the lines (a token JSON does not allow, an integer of
    16 digits or more, deep nesting): the exact path must read them."""
    count: int
    first: int
    """The first such line's position in the transaction (0-based, blank lines not counted)."""
    sample: bytes
    """That line's text."""


class Verdict(Enum):
    USUAL = "usual"
    """Every line is one the exact path accepts silently: the destination may read them."""
    LEARN = "learn"
    """Lines name properties the survey did not look at: survey again with them."""
    EXACT = "exact"
    """Something needs the exact path."""


@dataclass(slots=True)
class Judgement:
    verdict: Verdict
    shape: TableShape | None = None
    """The shape after the lines (USUAL): the caller adopts it."""
    columns: tuple[str, ...] = ()
    """The columns to survey next (LEARN)."""
    reason: str = ""


def surveyed_columns(shape: TableShape) -> tuple[str, ...]:
    """The columns a survey looks at: every column of the shape, in its order."""
    return tuple(c.name for c in shape.ordered())


def judge(
    shape: TableShape,
    key_pointers: list[str],
    columns: tuple[str, ...],
    groups: list[Group],
    *,
    hard_delete: bool,
) -> Judgement:
    """Decide a transaction from its survey; ``shape`` itself is left as it was."""
    trial = shape.snapshot()
    parser = DocumentParser(trial, key_pointers, hard_delete=hard_delete)
    if parser.key_names and any(name in shape.projections for name in parser.key_names):
        return Judgement(Verdict.EXACT, reason="a nested key")
    known = set(columns)
    new: list[str] = []
    for group in sorted(groups, key=lambda g: g.first):
        for name in group.names:
            if name not in known and name not in new:
                new.append(name)
        problem = _line_problem(group, hard_delete) or _class_problem(trial, columns, group.classes)
        if problem:
            return Judgement(Verdict.EXACT, reason=problem)
        try:
            parser.parse(group.sample)
        except LineProblem as exc:
            return Judgement(Verdict.EXACT, reason=exc.reason)
    if new:
        return Judgement(Verdict.LEARN, columns=(*columns, *new), reason="new properties")
    return Judgement(Verdict.USUAL, shape=trial)


def _line_problem(group: Group, hard_delete: bool) -> str:
    """What the first line's parse cannot stand for. (A repeated name, a line that is not an
    object, a missing or null key: every line of the group shares it, so the first line's
    parse finds it.)"""
    if group.suspect:
        return "a suspect token"
    if hard_delete and "_meta" in group.names:
        return "a delete marker"
    return ""


def _class_problem(shape: TableShape, columns: tuple[str, ...], classes: tuple[str, ...]) -> str:
    """Why a class cannot be judged by its first line (its acceptance depends on the value)."""
    if len(classes) != len(columns):
        return "a survey of other columns"
    for name, kind in zip(columns, classes, strict=True):
        if kind not in CLASSES:
            return f"an unknown class {kind!r}"
        col = shape.columns.get(name)
        if col is None:
            continue
        ctype = col.type
        if ctype in (ColumnType.TIMESTAMPTZ, ColumnType.DATE) and kind not in (MISSING, ISO):
            return "a date-time the exact path words"
        if ctype in (ColumnType.BIGINT, ColumnType.HUGEINT) and col.declared and kind == FLOAT:
            return "a number with a fraction for a declared integer"
    return ""
