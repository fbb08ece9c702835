"""One line of NDJSON into a checked document: parse, key, delete marker, table shape.

Pure apart from growing the :class:`~afterload.schema.TableShape`; problems are raised as
:class:`~afterload.schema.LineProblem` carrying only the reason, and the caller (which knows the
binding, the file and the line number) turns them into an error or a reject.
"""

from __future__ import annotations

from typing import Any

import orjson

from afterload.errors import AfterloadError
from afterload.schema import LineProblem, TableShape

Key = Any
"""A key value (scalar) or a tuple of them for composite keys."""

_SCALARS = (str, int, float, bool)


class DocumentError(AfterloadError):
    """A bad line: ``binding: file:line: reason``."""

    def __init__(self, binding: str, source: str, line: int, reason: str) -> None:
        self.binding, self.source, self.line, self.reason = binding, source, line, reason
        super().__init__(f"{binding}: {source}:{line}: {reason}")


def _describe_json_error(exc: orjson.JSONDecodeError, raw: bytes) -> str:
    msg = str(exc)
    if "utf-8" in msg.lower() or "utf8" in msg.lower() or "surrogate" in msg.lower():
        return "is not valid UTF-8"
    return f"is not valid JSON ({msg.split(':')[0]})"


class DocumentParser:
    """Parses one binding's lines; keeps the binding's table shape up to date."""

    def __init__(self, shape: TableShape, key_pointers: list[str], *, hard_delete: bool) -> None:
        self.shape = shape
        # A hard delete only needs its key: its other values never reach a column.
        self.unchecked_deletes = hard_delete and not shape.delta
        self.key_names = shape.key
        self.key_pointers = key_pointers
        self._single = self.key_names[0] if len(self.key_names) == 1 else None

    def parse(self, raw: bytes) -> tuple[Key, bool]:
        """Return (key, is_delete, document); raise LineProblem on anything wrong."""
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise LineProblem(_describe_json_error(exc, raw)) from None
        if type(doc) is not dict:
            raise LineProblem(f"is {_kind(doc)}, not a JSON object")
        key = self.key_of(doc)
        meta = doc.get("_meta")
        delete = type(meta) is dict and meta.get("op") == "d"
        if not (delete and self.unchecked_deletes):
            self.shape.observe(doc)
        return key, delete

    def key_of(self, doc: dict[str, Any]) -> Key:
        single = self._single
        if single is not None:
            value = doc.get(single)
            if value is None or not isinstance(value, _SCALARS):
                self._bad_key(0, value, single in doc)
            return value
        if not self.key_names:
            return None
        values = []
        for i, name in enumerate(self.key_names):
            value = doc.get(name)
            if value is None or not isinstance(value, _SCALARS):
                self._bad_key(i, value, name in doc)
            values.append(value)
        return tuple(values)

    def _bad_key(self, index: int, value: Any, present: bool) -> None:
        pointer = self.key_pointers[index]
        if value is None:
            raise LineProblem(f"key {pointer} is null" if present else f"key {pointer} is missing")
        raise LineProblem(f"key {pointer} is {_kind(value)}; a key must be a string or a number")


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
