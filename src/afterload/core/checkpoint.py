"""The checkpoint: how far every source was read, committed with the rows it produced.

The destination stores it in the same transaction as the rows (exactly once) and hands it
back at open. Its NDJSON part is per binding, per file, a byte offset (with the line count
reached, for messages, and a digest of the bytes read); a rejects file's size is kept with it
so rejected lines are kept exactly once too. Drivers that read no files keep their own position
in ``driver``, which afterload never looks into (the Flow connector stores the runtime's
checkpoint there).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, JsonValue

VERSION = 1


class FilePosition(NamedTuple):
    """How far one file was read: bytes and complete lines consumed, and a digest of the bytes
    read (stored as a list; checkpoints without the digest still read)."""

    offset: int = 0
    line: int = 0
    digest: str = ""
    """A digest of the file's first and last bytes before ``offset``: a file replaced by
    another of at least that size must not be resumed mid-way (its first lines would be
    skipped silently). Empty when unknown (stdin, nothing read, an older checkpoint)."""


class BindingCheckpoint(BaseModel):
    """One binding's committed position."""

    model_config = ConfigDict(frozen=True)

    files: dict[str, FilePosition] = Field(default_factory=dict)
    rejects: int | None = None
    """The rejects file's size after this commit; None when the binding keeps no rejects."""
    key: list[str] | None = None
    """The key the rows were merged by (None: an older checkpoint). A changed key would merge
    new documents by another key into rows merged by this one: the run refuses it."""
    delta: bool | None = None
    """Whether the binding appended (delta updates) rather than merged."""


class Checkpoint(BaseModel):
    """Everything a driver needs to resume exactly after the last commit."""

    model_config = ConfigDict(frozen=True)

    version: int = VERSION
    bindings: dict[str, BindingCheckpoint] = Field(default_factory=dict)
    driver: JsonValue = None
    """A driver's own opaque position (JSON); None for the NDJSON driver."""
    triggers: dict[str, JsonValue] = Field(default_factory=dict)
    """Per trigger name, its own opaque state (JSON), committed with the data it is about:
    what a trigger still owes survives a crash exactly as the rows do."""

    def binding(self, name: str) -> BindingCheckpoint:
        """The binding's committed position; empty if it never committed."""
        return self.bindings.get(name) or BindingCheckpoint()

    def to_json(self) -> str:
        return self.model_dump_json(exclude_defaults=False)

    @classmethod
    def from_json(cls, text: str | bytes | None) -> Checkpoint:
        """Read a stored checkpoint; the empty ``{}`` of a fresh checkpoint row is an empty one."""
        if not text:
            return cls()
        return cls.model_validate_json(text)

    @classmethod
    def from_value(cls, value: Any) -> Checkpoint:
        return cls.model_validate(value or {})
