"""Whether a line names a top-level property twice: parsers disagree on which value counts
(orjson keeps the last, DuckDB the first), so such a line is a bad line.

The cheap test counts ``":`` in the text against the names the parsed document holds; only a
line it cannot clear is read again, name by name.
"""

from __future__ import annotations

import json
from typing import Any


def may_repeat_a_name(raw: bytes, doc: dict[str, Any]) -> bool:
    """False when ``raw`` surely names no top-level property twice; cheap, no false "False".

    orjson keeps a repeated name's last value and DuckDB's ``json_transform`` its first, so
    such a line is a bad line (:func:`_repeated_name` decides). Every name in the text ends in
    ``"`` then optional whitespace then ``:``; if the text has no more such endings than the
    parsed document has names at all levels, no name was folded away.
    """
    if b'" ' in raw or b'"\t' in raw or b'"\r' in raw:
        return True  # a name may end in whitespace before its colon: let the parser count
    ends = raw.count(b'":')
    return ends > len(doc) and ends > names_in(doc)


def names_in(value: Any) -> int:
    """Property names in a parsed object or array, at every level (without recursion: orjson
    reads nesting deeper than Python's recursion limit)."""
    count = 0
    stack = [value]
    while stack:
        value = stack.pop()
        if type(value) is dict:
            count += len(value)
            value = value.values()
        for inner in value:
            kind = type(inner)
            if kind is dict or kind is list:
                stack.append(inner)
    return count


def inner_names(doc: dict[str, Any], containers: tuple[str, ...]) -> int:
    """Property names inside the document's objects and arrays (its own not counted)."""
    return sum(names_in(doc[name]) for name in containers)


def repeated_name(raw: bytes) -> str | None:
    """The first top-level property name that ``raw`` (valid JSON) gives twice, if any."""
    top: list[list[tuple[str, Any]]] = []
    try:
        json.loads(raw, object_pairs_hook=top.append)  # the last object closed is outermost
    except (ValueError, RecursionError):  # nesting near orjson's limit of 1024
        return None
    seen: set[str] = set()
    for name, _ in top[-1]:
        if name in seen:
            return name
        seen.add(name)
    return None
