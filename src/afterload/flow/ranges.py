"""Key ranges: one checkpoint row per shard range, and which committed range a new one inherits.

Flow splits a shard's key range in two when it scales out; each child starts where its
parent had committed, as Estuary's SQL connectors do by copying the narrowest committed row
that covers the child's range. afterload keeps a checkpoint row per materialization name,
so a range is a name: ``materialization@kkkkkkkk-kkkkkkkk`` (key begin and end in hex).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from afterload.flow.catalog import RangeSpec

T = TypeVar("T")


def range_name(materialization: str, key_begin: int, key_end: int) -> str:
    """The checkpoint row's name of one shard range."""
    return f"{materialization}@{key_begin:08x}-{key_end:08x}"


def parse_range(name: str, materialization: str) -> tuple[int, int] | None:
    """``(key_begin, key_end)`` of a range name of this materialization; None otherwise."""
    prefix = materialization + "@"
    if not name.startswith(prefix):
        return None
    begin, sep, end = name[len(prefix) :].partition("-")
    try:
        if not sep or len(begin) != 8 or len(end) != 8:
            return None
        return int(begin, 16), int(end, 16)
    except ValueError:
        return None


def inherited(
    committed: Mapping[str, T], materialization: str, key_begin: int, key_end: int
) -> T | None:
    """The value of the narrowest committed range that covers ``[key_begin, key_end]`` and is
    not that range itself; None when no committed range covers it."""
    best: tuple[int, T] | None = None
    for name, value in committed.items():
        bounds = parse_range(name, materialization)
        if bounds is None or bounds == (key_begin, key_end):
            continue
        begin, end = bounds
        if begin <= key_begin and key_end <= end:
            width = end - begin
            if best is None or width < best[0]:
                best = (width, value)
    return None if best is None else best[1]


def overlapping(materialization: str, rng: RangeSpec, own: str, name: str) -> bool:
    """Whether checkpoint row ``name`` is another range of this materialization sharing keys
    with ``rng`` (a parent it was split from, or a sibling of another split)."""
    bounds = parse_range(name, materialization)
    if bounds is None or name == own:
        return False
    begin, end = bounds
    return begin <= rng.key_end and rng.key_begin <= end
