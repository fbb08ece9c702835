"""The transaction combiner: what one commit will store, reduced in memory.

Standard updates keep the last document per key (a hard delete is a document too: the last
event for a key decides whether the row is written or removed). Delta updates keep every
document in order. Only raw line bytes are kept, never parsed documents, so a transaction's
memory is about its input size and the destination can stage the bytes as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class StagedLines:
    """A binding's lines, found usual by a survey, staged in a file the destination reads
    itself (reducing by key in SQL, last line wins); it deletes the file after the commit."""

    path: Path
    documents: int
    longest: int


class BindingChanges:
    """One binding's part of a transaction."""

    __slots__ = (
        "appended",
        "bytes",
        "chunks",
        "deleted",
        "delta",
        "documents",
        "hard_delete",
        "rows",
        "staged",
    )

    def __init__(self, *, delta: bool, hard_delete: bool) -> None:
        self.delta = delta
        self.hard_delete = hard_delete and not delta
        # Public for DocumentParser.scan, which stores plain documents without a call per line.
        self.rows: dict[Any, bytes] = {}
        self.deleted: dict[Any, bytes] = {}
        self.appended: list[bytes] = []
        self.documents = 0
        self.bytes = 0
        self.chunks: list[tuple[str, int, bytes]] = []
        """Lines read but not parsed yet (source, first line number, the lines joined by
        newlines): a survey decides at the end of the transaction whether Python needs to
        split and parse them at all."""
        self.staged: StagedLines | None = None
        """Set when a survey found the chunks usual: the destination reads them itself."""

    def add(self, key: Any, raw: bytes, delete: bool) -> None:
        self.documents += 1
        self.bytes += len(raw) + 1
        if self.delta:
            self.appended.append(raw)
        elif delete and self.hard_delete:
            self.deleted[key] = raw
            self.rows.pop(key, None)
        else:
            self.rows[key] = raw
            if self.deleted:
                self.deleted.pop(key, None)

    def upserts(self) -> list[bytes]:
        """The documents to write: every delta document, or the last one per key."""
        return self.appended if self.delta else list(self.rows.values())

    def deletes(self) -> list[bytes]:
        """The last document of each key whose last event is a hard delete."""
        return list(self.deleted.values())

    def __len__(self) -> int:
        return self.documents


@dataclass
class Transaction:
    """Everything one commit stores: rows per binding and rejected lines (the driver brings the
    checkpoint that goes with it)."""

    changes: dict[str, BindingChanges] = field(default_factory=dict)
    rejects: dict[str, list[bytes]] = field(default_factory=dict)
    documents: int = 0
    bytes: int = 0
    full: bool = False
    """Stopped at a size limit: the sources still have data (a backfill)."""

    @property
    def stored(self) -> int:
        return sum(c.documents for c in self.changes.values())

    def empty(self) -> bool:
        return self.documents == 0 and not any(self.rejects.values())
