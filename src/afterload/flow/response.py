"""The connector's responses, and their encoding as one JSON line each.

Defaults are left out on the wire as the runtime's codec does (a false ``deltaUpdates`` or an
absent ``state`` is omitted). ``Loaded`` has a fast path, :func:`encode_loaded`, because it
is sent once per existing key and its document usually comes from the destination as JSON
text already: re-parsing it only to serialize it again would cost more than the lookup.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import orjson
from pydantic import Field

from afterload.flow.catalog import ConnectorState, Json, Wire

#: The materialize protocol's version, as Spec must answer it.
PROTOCOL = 3032023


class ConstraintType(StrEnum):
    """How a projection may take part; the names are the protocol's enum names.

    The current protocol documents LOCATION_RECOMMENDED as deprecated and equivalent to
    FIELD_OPTIONAL; Estuary's SQL connectors still answer it for the fields a user most
    likely wants, and so do we. INCOMPATIBLE is the current name of value 6 (formerly
    UNSATISFIABLE): the field is wanted but the existing column cannot hold it until a
    backfill recreates the table.
    """

    FIELD_REQUIRED = "FIELD_REQUIRED"
    LOCATION_REQUIRED = "LOCATION_REQUIRED"
    LOCATION_RECOMMENDED = "LOCATION_RECOMMENDED"
    FIELD_OPTIONAL = "FIELD_OPTIONAL"
    FIELD_FORBIDDEN = "FIELD_FORBIDDEN"
    INCOMPATIBLE = "INCOMPATIBLE"


class Constraint(Wire):
    type: ConstraintType
    reason: str
    folded_field: str = ""


class Spec(Wire):
    protocol: int  # PROTOCOL; required so that exclude_defaults never drops it
    config_schema: dict[str, Json]
    resource_config_schema: dict[str, Json]
    documentation_url: str


class ValidatedBinding(Wire):
    constraints: dict[str, Constraint]
    resource_path: list[str]
    delta_updates: bool = False


class Validated(Wire):
    bindings: list[ValidatedBinding] = Field(default_factory=list)


class Applied(Wire):
    action_description: str = ""
    state: ConnectorState | None = None


class Opened(Wire):
    #: The checkpoint committed last with the data, handed back verbatim; an empty one (``{}``)
    #: when nothing was committed, so that the runtime starts from scratch. None would let it
    #: use its recovery log's, skipping what a new or emptied destination never received.
    runtime_checkpoint: dict[str, Json] | None = None


class Loaded(Wire):
    binding: int = Field(ge=0)
    doc: Json


class Flushed(Wire):
    state: ConnectorState | None = None


class StartedCommit(Wire):
    state: ConnectorState | None = None


class Acknowledged(Wire):
    state: ConnectorState | None = None


Response = Spec | Validated | Applied | Opened | Loaded | Flushed | StartedCommit | Acknowledged

_KEYS: dict[type[Wire], str] = {
    Spec: "spec",
    Validated: "validated",
    Applied: "applied",
    Opened: "opened",
    Loaded: "loaded",
    Flushed: "flushed",
    StartedCommit: "startedCommit",
    Acknowledged: "acknowledged",
}


def _body(message: Wire) -> dict[str, Any]:
    # Required fields (Loaded.binding, Spec.protocol, ConnectorState.updated) have no
    # default, so they are kept even when zero or empty.
    return message.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def dumps(value: Any) -> bytes:
    """Compact JSON; integers past 64 bits (which orjson refuses) go through the stdlib."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def encode_response(message: Response) -> bytes:
    """One response → one JSON line (with its newline)."""
    return dumps({_KEYS[type(message)]: _body(message)}) + b"\n"


def encode_loaded(binding: int, doc_json: bytes | str) -> bytes:
    """A Loaded line around a document that is already JSON text (not re-parsed)."""
    if isinstance(doc_json, str):
        doc_json = doc_json.encode()
    return b'{"loaded":{"binding":%d,"doc":%s}}\n' % (binding, doc_json)
