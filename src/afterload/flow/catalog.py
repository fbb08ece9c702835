"""Flow's catalog specs as the runtime's JSON codec writes them inside Validate, Apply and Open.

Only the fields a SQL materialization reads are typed; every model ignores unknown keys,
because the runtime adds fields over time and a newer runtime must not break an older
connector. Names are snake_case in Python and camelCase on the wire.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

#: Any JSON value embedded as-is by the codec (configs, schemas, documents, states).
Json = Any


class Wire(BaseModel):
    """Base of every protocol model: camelCase aliases, unknown keys ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
    )


class StringInference(Wire):
    content_type: str = ""
    format: str = ""
    content_encoding: str = ""
    max_length: int = 0


class Inference(Wire):
    """What the collection's schema says about one location."""

    types: list[str] = Field(default_factory=list)
    string: StringInference | None = None
    title: str = ""
    description: str = ""
    default: Json = None
    secret: bool = False
    exists: Literal["INVALID", "MUST", "MAY", "IMPLICIT", "CANNOT"] | str = "INVALID"


class Projection(Wire):
    """A field: a JSON pointer into the document with a name (the column)."""

    ptr: str = ""
    field: str
    explicit: bool = False
    is_partition_key: bool = False
    is_primary_key: bool = False
    inference: Inference = Field(default_factory=Inference)

    @property
    def is_root_document(self) -> bool:
        return self.ptr == ""


class CollectionSpec(Wire):
    name: str
    write_schema: Json = None
    read_schema: Json = None
    key: list[str] = Field(default_factory=list)
    uuid_ptr: str = ""
    partition_fields: list[str] = Field(default_factory=list)
    projections: list[Projection] = Field(default_factory=list)


class FieldSelection(Wire):
    """The fields a binding materializes: key columns, value columns, the document column."""

    keys: list[str] = Field(default_factory=list)
    values: list[str] = Field(default_factory=list)
    document: str = ""
    field_config: dict[str, Json] = Field(default_factory=dict)


class MaterializationBinding(Wire):
    resource_config: Json = None
    resource_path: list[str] = Field(default_factory=list)
    collection: CollectionSpec
    field_selection: FieldSelection = Field(default_factory=FieldSelection)
    delta_updates: bool = False
    journal_read_suffix: str = ""
    not_before: str | None = None
    not_after: str | None = None
    backfill: int = 0
    state_key: str = ""
    priority: int = 0


class MaterializationSpec(Wire):
    name: str
    connector_type: str = ""
    config: Json = None
    bindings: list[MaterializationBinding] = Field(default_factory=list)


class RangeSpec(Wire):
    """The shard's slice of the key and r-clock spaces; zero values are omitted on the wire."""

    key_begin: int = Field(default=0, ge=0, le=0xFFFFFFFF)
    key_end: int = Field(default=0, ge=0, le=0xFFFFFFFF)
    r_clock_begin: int = Field(default=0, ge=0, le=0xFFFFFFFF)
    r_clock_end: int = Field(default=0, ge=0, le=0xFFFFFFFF)

    @property
    def is_full(self) -> bool:
        """True when this shard owns every key (the DuckDB single-writer case)."""
        return self.key_begin == 0 and self.key_end == 0xFFFFFFFF


class ConnectorState(Wire):
    """A state update: replaces the connector state, or is an RFC 7396 patch of it."""

    updated: Json
    merge_patch: bool = False
