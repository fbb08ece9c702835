"""One line of NDJSON into a checked document: parse, key, delete marker, table shape.

Pure apart from growing the :class:`~afterload.core.schema.TableShape`; problems are raised
as :class:`~afterload.core.schema.LineProblem` carrying only the reason, and the caller (which
knows the binding, the file and the line number) turns them into an error or a reject.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from afterload.core import exactjson
from afterload.core.exactjson import may_vanish
from afterload.core.pointers import escape, resolve
from afterload.core.repeated_names import inner_names, may_repeat_a_name, repeated_name
from afterload.core.schema import ColumnType, LineProblem, TableShape
from afterload.core.transaction import BindingChanges
from afterload.core.values import EXACT_DOUBLE, INT64_MAX, INT64_MIN, integral
from afterload.errors import AfterloadError

Key = Any
"""A key value (scalar) or a tuple of them for composite keys."""

_KEY_TYPES = (str, int, bool)
"""A float is no key: ``10`` and ``10.0`` would name one row, and big ones round."""


class DocumentError(AfterloadError):
    """A bad line: ``binding: file:line: reason``."""

    def __init__(self, binding: str, source: str, line: int, reason: str) -> None:
        self.binding, self.source, self.line, self.reason = binding, source, line, reason
        super().__init__(f"{binding}: {source}:{line}: {reason}")


def _describe_json_error(exc: orjson.JSONDecodeError, raw: bytes) -> str:
    msg = str(exc)
    if raw.startswith(b"\xef\xbb\xbf"):
        return "starts with a byte-order mark (EF BB BF), which JSON text must not hold"
    if "low surrogate" in msg.lower() or "high surrogate" in msg.lower():
        return "holds a lone surrogate (an escape in \\ud800-\\udfff without its pair)"
    if "utf-8" in msg.lower() or "utf8" in msg.lower():
        return "is not valid UTF-8"
    return f"is not valid JSON ({msg.split(':')[0]})"


class DocumentParser:
    """Parses one binding's lines; keeps the binding's table shape up to date."""

    def __init__(
        self,
        shape: TableShape,
        key_pointers: list[str],
        *,
        hard_delete: bool,
        forbid_nul: bool = False,
    ) -> None:
        self.shape = shape
        self.forbid_nul = forbid_nul
        """The destination cannot store U+0000 (PostgreSQL): such a line is a bad line."""
        # A hard delete only needs its key: its other values never reach a column.
        self.unchecked_deletes = hard_delete and not shape.delta
        self.key_names = shape.key
        self.key_pointers = key_pointers
        self._paths = [shape.projections.get(name) for name in self.key_names]
        """Each key's path when it is nested (``/a/b``), else None: a plain dict lookup."""
        nested = any(path is not None for path in self._paths)
        self._instants = tuple(
            i
            for i, name in enumerate(self.key_names)
            if (col := shape.columns.get(name)) is not None and col.type is ColumnType.TIMESTAMPTZ
        )
        """Key positions holding date-times: one instant has many spellings (offsets, trailing
        zeros), and the reduce must take them as one key, as the table's key column does."""
        plain = len(self.key_names) == 1 and not nested and not self._instants
        self._single = self.key_names[0] if plain else None
        self.fast = self._single is not None
        """Whether :meth:`scan` can take lines; otherwise every line goes through :meth:`parse`."""

    def parse(self, raw: bytes) -> tuple[Key, bool]:
        """Return (key, is_delete); raise LineProblem on anything wrong."""
        try:
            doc = exactjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise LineProblem(_describe_json_error(exc, raw)) from None
        except exactjson.NumberRefused as exc:
            raise LineProblem(str(exc)) from None
        if type(doc) is not dict:
            raise LineProblem(f"is {_kind(doc)}, not a JSON object")
        if may_repeat_a_name(raw, doc):
            twice = repeated_name(raw)
            if twice is not None:
                raise LineProblem(
                    f"has the property {twice!r} twice; a document names each property once"
                )
        key = self.key_of(doc)
        meta = doc.get("_meta")
        delete = type(meta) is dict and meta.get("op") == "d"
        unchecked = delete and self.unchecked_deletes
        # JSON can only spell U+0000 as an escape, so the byte search rules out almost every line.
        if self.forbid_nul and b"\\u0000" in raw and _holds_nul(key if unchecked else doc):
            raise LineProblem("holds a NUL character (\\u0000), which the destination cannot store")
        if not unchecked:
            self.shape.observe(_integers_read_exactly(raw, doc, self.shape))
        return key, delete

    def take(
        self,
        lines: list[bytes],
        changes: BindingChanges,
        problem: Callable[[int, str, bytes], None],
    ) -> None:
        """Parse ``lines`` into ``changes``; ``problem(index, reason, raw)`` for each bad one.

        Blank lines are skipped. Plain lines go through :meth:`scan` in bulk; every line it
        stops at goes through :meth:`parse`, the exact path, one at a time.
        """
        parse = self.parse
        add = changes.add
        scan = self.scan if self.fast else None
        i, n = 0, len(lines)
        while i < n:
            if scan is not None:
                i = scan(lines, i, changes)
                if i >= n:
                    break
            raw = lines[i]
            i += 1
            if not raw:
                continue
            try:
                key, delete = parse(raw)
            except LineProblem as exc:
                if not raw.isspace():
                    problem(i - 1, exc.reason, raw)
                continue
            add(key, raw, delete)

    # The hot loop stays one function on purpose: a call per line costs more than its branches.
    def scan(self, lines: list[bytes], start: int, changes: BindingChanges) -> int:  # noqa: C901
        """Take lines from ``start`` into ``changes`` in one tight loop; where it stopped.

        The loop only takes what :meth:`parse` would accept without a word and without changing
        the shape: an object with a string or integer key, no ``_meta``, and a signature the
        shape already accepted, whose few value checks pass. At anything else it stops, and
        the caller passes that line through :meth:`parse`, which decides and words the problem
        exactly; then scanning resumes. Stopping is always safe, so the loop stays small.
        """
        single = self._single
        if single is None:
            return start
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        plan_of = self.shape.plan
        known = self.shape.plans.get  # the same dict for the shape's life: cleared, not replaced
        rows = None if changes.delta else changes.rows
        appended = changes.appended
        deleted = changes.deleted
        n = len(lines)
        i = start
        nbytes = 0
        nul = self.forbid_nul
        while i < n:
            raw = lines[i]
            if nul and b"\\u0000" in raw:
                break
            try:
                doc = loads(raw)
            except decode_error:
                break
            if type(doc) is not dict or "_meta" in doc:
                break
            key = doc.get(single)
            kind = type(key)
            if kind is not int and kind is not str:
                break
            sig = (tuple(doc), tuple(map(type, doc.values())))
            plan = known(sig) or plan_of(sig)
            if plan is None:
                break
            ints, narrow, others, floats, containers = plan
            if ints:
                value = doc[ints[0]]
                if value < INT64_MIN or value > INT64_MAX or not _within(doc, ints[1:], INT64):
                    break
            if narrow:  # past 2^53 the exact path notes the integer (core/schema.py)
                value = doc[narrow[0]]
                if (
                    value < -EXACT_DOUBLE
                    or value > EXACT_DOUBLE
                    or not _within(doc, narrow[1:], INT53)
                ):
                    break
            if floats and not _small_floats(doc, floats):
                break  # orjson may have read an integer past 64 bits: the exact path reads it
            if others and not _pass(doc, others):
                break
            # A repeated top-level name: orjson keeps its last value, DuckDB its first. Each
            # name in the text ends in '":' (or '"' and whitespace, which a line rarely holds);
            # when the text has no more of those than the document has names, none repeats.
            ends = raw.count(b'":')
            size = len(doc)
            if ends > size and (not containers or ends > size + inner_names(doc, containers)):
                break
            if b'" ' in raw or b'"\t' in raw or b'"\r' in raw:
                break
            if may_vanish(raw):
                break  # a non-zero number orjson read as 0: the exact path refuses it
            if rows is None:
                appended.append(raw)
            else:
                rows[key] = raw
                if deleted:
                    deleted.pop(key, None)
            nbytes += len(raw)
            i += 1
        taken = i - start
        changes.documents += taken
        changes.bytes += nbytes + taken
        return i

    def key_of(self, doc: dict[str, Any]) -> Key:
        single = self._single
        if single is not None:
            value = doc.get(single)
            if value is None or not isinstance(value, _KEY_TYPES):
                self._bad_key(0, value, single in doc)
            return value
        if not self.key_names:
            return None
        values = []
        for i, name in enumerate(self.key_names):
            path = self._paths[i]
            if path is None:
                value = doc.get(name)
                present = name in doc
            else:
                parent = resolve(doc, path[:-1])
                value = parent.get(path[-1]) if type(parent) is dict else None
                present = type(parent) is dict and path[-1] in parent
            if value is None or not isinstance(value, _KEY_TYPES):
                self._bad_key(i, value, present)
            values.append(value)
        for i in self._instants:
            values[i] = _instant(values[i])
        return tuple(values) if len(values) > 1 else values[0]

    def _bad_key(self, index: int, value: Any, present: bool) -> None:
        pointer = self.key_pointers[index]
        if value is None:
            raise LineProblem(f"key {pointer} is null" if present else f"key {pointer} is missing")
        if isinstance(value, float):
            raise LineProblem(
                f"key {pointer} must be an integer, string or boolean, not a number with a "
                f"fraction or exponent ({value!r})"
            )
        raise LineProblem(
            f"key {pointer} is {_kind(value)}; a key must be an integer, string or boolean"
        )


def _instant(value: Any) -> Any:
    """A date-time key as its instant (aware datetimes hash and compare by instant), so that
    ``…T00:00:00Z`` and ``…T01:00:00+01:00`` reduce to one row; anything else as it is (the
    shape check words what is wrong with it)."""
    if type(value) is str:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    return value


_INTEGER_TYPES = (ColumnType.BIGINT, ColumnType.HUGEINT)


def _integers_read_exactly(raw: bytes, doc: dict[str, Any], shape: TableShape) -> dict[str, Any]:
    """``doc`` with each number written with a fraction or an exponent (a float) for a declared
    integer column replaced by the integer its text is, read again from ``raw`` as decimals;
    LineProblem if the text is no integer. Rare: a document without such a float is returned
    as it is after one look at its values."""
    columns = shape.columns
    names = [
        name
        for name, value in doc.items()
        if type(value) is float
        and (col := columns.get(name)) is not None
        and col.declared
        and col.type in _INTEGER_TYPES
    ]
    if not names:
        return doc
    try:
        # Valid JSON (orjson read it); a repeated name was refused before, so both readings
        # agree on which value each name has.
        exact = json.loads(raw, parse_float=Decimal)
    except RecursionError:
        raise LineProblem("nests too deeply to be read exactly") from None
    for name in names:
        try:
            doc[name] = integral(exact[name], columns[name].type.value)
        except LineProblem as exc:
            raise LineProblem(f"/{escape(name)} {exc.reason}") from None
    return doc


_FLOAT_LIMIT = float(2**63)
"""orjson reads every integer in [-2^63, 2^64) as an int; one past it, as a float this large."""


def _small_floats(doc: dict[str, Any], names: tuple[str, ...]) -> bool:
    for name in names:
        value = doc[name]
        if value >= _FLOAT_LIMIT or value <= -_FLOAT_LIMIT:
            return False
    return True


INT64 = (INT64_MIN, INT64_MAX)
INT53 = (-EXACT_DOUBLE, EXACT_DOUBLE)
"""Where every integer is a DOUBLE exactly: past it, the exact path notes the integer."""


def _within(doc: dict[str, Any], names: tuple[str, ...], bounds: tuple[int, int]) -> bool:
    low, high = bounds
    for name in names:
        value = doc[name]
        if value < low or value > high:
            return False
    return True


def _pass(doc: dict[str, Any], checks: tuple[tuple[str, Any], ...]) -> bool:
    for name, check in checks:
        try:
            check(doc[name])
        except LineProblem:
            return False
    return True


def _holds_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return False


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a number"
