"""JSON pointers (RFC 6901) as keys use them: names, Estuary's projection name, the value.

A key such as ``/customer/id`` reaches into a nested object; its column is named as Estuary
names the projection (``customer/id``). Pure functions, hit by property tests.
"""

from __future__ import annotations

from typing import Any


def pointer_tokens(pointer: str) -> tuple[str, ...]:
    """A JSON pointer's property names, unescaped (RFC 6901: ``~1`` is ``/``, ``~0`` is ``~``)."""
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:])


def projection_name(path: tuple[str, ...]) -> str:
    """The column of a key: Estuary's projection name, the names joined by ``/`` (``a/b``)."""
    return "/".join(path)


def escape(name: str) -> str:
    """A property name as one token of a JSON pointer (``~`` and ``/`` escaped)."""
    return name.replace("~", "~0").replace("/", "~1")


def resolve(doc: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` through nested objects; None where there is none."""
    for token in path:
        if type(doc) is not dict:
            return None
        doc = doc.get(token)
    return doc


def key_columns(pointers: list[str]) -> list[tuple[str, str, tuple[str, ...]]]:
    """Each key's column name, pointer and path; ValueError if two keys share a column (names
    ignore case) or one lies inside another (a key is a single value)."""
    found: list[tuple[str, str, tuple[str, ...]]] = []
    for pointer in pointers:
        path = pointer_tokens(pointer)
        name = projection_name(path)
        for other, other_pointer, other_path in found:
            if other.lower() == name.lower():
                raise ValueError(
                    f"key {pointer} and key {other_pointer} would be the same column {name!r} "
                    "(column names ignore case)"
                )
            shorter, longer = sorted((path, other_path), key=len)
            if longer[: len(shorter)] == shorter:
                raise ValueError(
                    f"key {pointer} and key {other_pointer} overlap; a key is a single value, "
                    "so one cannot lie inside the other"
                )
        found.append((name, pointer, path))
    return found
