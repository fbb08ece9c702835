"""Values into ``COPY`` text, each checked against its column: the keys of deletes and loads
(never checked against the columns by the driver: a key no column can hold is skipped) and
the dates and times of rows (``shred.py``: the driver checked them, ``core/temporal.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from afterload.core import exactjson
from afterload.core.exactjson import dumps
from afterload.core.pointers import resolve
from afterload.core.schema import ColumnType
from afterload.destinations.postgres.dialect import PG_TYPES, pointer

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


_CHUNK_ROWS = 2048


class BadValue(Exception):
    """A value PostgreSQL cannot hold (a NUL character); the reason names the property."""


_NULL = "\\N"


def _escape(text: str) -> str:
    """COPY text format: backslash, tab, newline and carriage return are escaped."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = (
            text.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return text


def has_nul_escape(json_text: str) -> bool:
    """True if JSON text holds ``\\u0000``, which neither TEXT nor JSONB can store."""
    start = json_text.find("\\u0000")
    while start >= 0:
        slashes = 0
        i = start
        while i > 0 and json_text[i - 1] == "\\":
            slashes += 1
            i -= 1
        if slashes % 2 == 0:
            return True
        start = json_text.find("\\u0000", start + 1)
    return False


Encoder = Callable[[Any], str]


_OFFSET_LIMIT = timedelta(hours=16)
"""PostgreSQL reads offsets up to 15:59; RFC 3339 allows up to 23:59."""


# One closure per column type, chosen once per column: no dispatch per value.
def encoder(prop: str, ctype: ColumnType) -> Encoder:  # noqa: C901
    """A function from a document value (never None) to its COPY text."""
    where = pointer(prop)

    def bad(value: Any) -> BadValue:
        return BadValue(f"{where} holds {value!r}, which a {PG_TYPES[ctype]} column cannot hold")

    if ctype is ColumnType.BIGINT or ctype is ColumnType.HUGEINT:
        wide = ctype is ColumnType.HUGEINT

        def integer(value: Any) -> str:
            # The shape checked the range; a float here is one a declared integer column took
            # because it is integral and small enough to be exact.
            if type(value) is int:
                if wide or _INT64_MIN <= value <= _INT64_MAX:
                    return str(value)
            elif type(value) is float and value.is_integer():
                return str(int(value))
            raise bad(value)

        return integer
    if ctype is ColumnType.DOUBLE:

        def double(value: Any) -> str:
            if type(value) is float or type(value) is int:
                return repr(value)
            raise bad(value)

        return double
    if ctype is ColumnType.BOOLEAN:

        def boolean(value: Any) -> str:
            if value is True:
                return "t"
            if value is False:
                return "f"
            raise bad(value)

        return boolean
    if ctype is ColumnType.VARCHAR:

        def text(value: Any) -> str:
            if type(value) is not str:
                raise bad(value)
            if "\x00" in value:
                raise BadValue(f"{where} has a NUL character, which PostgreSQL cannot store")
            return _escape(value)

        return text
    if ctype is ColumnType.TIMESTAMPTZ:

        def timestamp(value: Any) -> str:
            # The driver took RFC 3339 only (core/temporal.py); hand PostgreSQL the instant
            # Python reads, in UTC: PostgreSQL refuses offsets past 15:59 that RFC 3339 allows.
            try:
                moment = datetime.fromisoformat(value)
            except (TypeError, ValueError):
                raise bad(value) from None
            try:
                return moment.astimezone(UTC).isoformat()
            except OverflowError:  # the year 0 or 10000 in UTC: PostgreSQL takes the offset
                # below 16 hours; the driver made a larger one a bad line (far_offset_problem)
                offset = moment.utcoffset()
                if offset is not None and abs(offset) >= _OFFSET_LIMIT:
                    raise BadValue(
                        f"{where} {value!r} is outside the years 0001 to 9999 in UTC, with an "
                        "offset of 16 hours or more, which PostgreSQL cannot read"
                    ) from None
                return moment.isoformat()

        return timestamp
    if ctype is ColumnType.DATE:

        def day(value: Any) -> str:
            try:
                return date.fromisoformat(value).isoformat()
            except (TypeError, ValueError):
                raise bad(value) from None

        return day

    def json_value(value: Any) -> str:
        out = dumps(value)
        if "\\" in out:
            if has_nul_escape(out):
                raise BadValue(f"{where} has a NUL character (\\u0000), which JSONB cannot store")
            out = out.replace("\\", "\\\\")
        return out

    return json_value


Plan = list[tuple[str, Encoder]]
Projections = dict[str, tuple[str, ...]]
"""Nested key columns (``a/b``) and their paths: set on each parsed document before encoding."""


def project(doc: dict[str, Any], projections: Projections) -> dict[str, Any]:
    """Add each nested key's value under its column name (a parsed copy, never the raw text)."""
    for name, path in projections.items():
        doc[name] = resolve(doc, path)
    return doc


def encode_keys(
    lines: Iterable[bytes], plan: Plan, projections: Projections | None = None
) -> Iterator[bytes]:
    """COPY text for the keys of deleted documents; a key no column could hold is skipped."""
    rows: list[str] = []
    for raw in lines:
        doc = exactjson.loads(raw)
        if projections:
            project(doc, projections)
        try:
            values = [_NULL if (v := doc.get(n)) is None else enc(v) for n, enc in plan]
        except BadValue:
            continue  # no row can have this key
        rows.append("\t".join(values))
        if len(rows) >= _CHUNK_ROWS:
            rows.append("")
            yield "\n".join(rows).encode()
            rows = []
    if rows:
        rows.append("")
        yield "\n".join(rows).encode()
