"""The NDJSON driver's config: its bindings (a glob into a table) and its transaction limits."""

from __future__ import annotations

from pydantic import Field, model_validator

from afterload.fields import JsonPointer, Strict


class Binding(Strict):
    """One source stream into one table."""

    source: str = Field(description="A glob of NDJSON files (relative to the config file), or -.")
    table: str = Field(min_length=1, max_length=63)
    key: list[JsonPointer] = Field(
        default_factory=list, description="JSON pointers of the key; required unless delta."
    )
    delta_updates: bool = False
    hard_delete: bool = False
    schema_: str | None = Field(
        default=None, alias="schema", description="A JSON Schema file for the documents."
    )
    rejects: str | None = Field(
        default=None, description="Bad lines go to this NDJSON file with a reason."
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

