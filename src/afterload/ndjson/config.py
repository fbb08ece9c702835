"""The NDJSON driver's config: its bindings (a glob into a table) and its transaction limits."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import Field, StrictBool, model_validator

from afterload.fields import JsonPointer, Strict
from afterload.ndjson.sync_schedule import SyncSchedule


class Binding(Strict):
    """One source stream into one table."""

    source: str = Field(description="A glob of NDJSON files (relative to the config file), or -.")
    table: str = Field(min_length=1, max_length=63)
    key: list[JsonPointer] = Field(
        default_factory=list, description="JSON pointers of the key; required unless delta."
    )
    # Strict: lax pydantic took "yes", "off" or 1, and delta_updates: 1 made a keyed binding
    # append-only. YAML's own true/false (and unquoted yes/no) arrive as booleans.
    delta_updates: StrictBool = False
    hard_delete: StrictBool = False
    schema_: str | None = Field(
        default=None, alias="schema", description="A JSON Schema file for the documents."
    )
    rejects: str | None = Field(
        default=None, description="Bad lines go to this NDJSON file with a reason."
    )
    store_document: StrictBool = Field(
        default=True,
        description="Keep each document whole in flow_document; false leaves it out (DuckDB).",
    )

    @model_validator(mode="after")
    def _key_needed(self) -> Binding:
        if not self.key and not self.delta_updates:
            raise ValueError("key is required unless delta_updates is true")
        return self


class TransactionLimits(Strict):
    """How much one transaction may hold: its memory is bounded by these, not the input."""

    max_documents: int = Field(default=200_000, ge=1, description="Documents per transaction.")
    max_bytes: int = Field(default=128 * 1024 * 1024, ge=1024, description="Bytes per transaction.")


class NamedDestination(Protocol):
    """Which destination the config names (none: DuckDB, the embedded default)."""

    @property
    def postgres(self) -> object | None: ...


class NdjsonBlocks(Protocol):
    """The root config's blocks the driver reads (the root model satisfies it)."""

    @property
    def bindings(self) -> list[Binding]: ...

    @property
    def transaction(self) -> TransactionLimits: ...

    @property
    def destination(self) -> NamedDestination | None: ...

    @property
    def sync_schedule(self) -> SyncSchedule: ...


class LoadedNdjson(Protocol):
    """A loaded config as the driver sees it: its blocks, and where relative paths start.

    A Protocol, so the driver never imports the root config (which imports this package).
    """

    @property
    def path(self) -> Path: ...

    @property
    def name(self) -> str: ...

    @property
    def base_dir(self) -> Path: ...

    @property
    def config(self) -> NdjsonBlocks: ...

    def resolve(self, relative: str) -> Path: ...

    def where(self, *loc: str | int) -> str:
        """``file:line: key.path`` of a key, for a problem found after loading."""
        ...
