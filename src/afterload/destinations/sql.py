"""What both SQL destinations share: identifier quoting, the checkpoint table's name, and the
first line of a driver's error (the rest is a driver's traceback, not a sentence)."""

from __future__ import annotations

CHECKPOINTS = "_afterload_checkpoints"
"""One row per materialization: its fence, its checkpoint, when and how often it committed."""


def quote(name: str) -> str:
    """A double-quoted identifier: any property name keeps its case, spaces and quotes."""
    return '"' + name.replace('"', '""') + '"'


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
