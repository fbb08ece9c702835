"""The runtime's requests, one model per message, and the envelope that carries exactly one.

On the wire a request is one JSON object with one known key (``{"load": {...}}``); the
runtime may add keys it reserves (``$internal``) or newer fields (``statePatches``,
``statePatchesJson``, ``connectorStatePatchesJson``), which are accepted and ignored.
``keyPacked``/``valuesPacked`` are base64 FoundationDB tuples and the only key and values the
runtime fills in: ``key``/``values`` are kept when present but are usually absent.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

import orjson
from pydantic import BeforeValidator, Field, ValidationError

from afterload.flow.catalog import (
    CollectionSpec,
    Json,
    MaterializationSpec,
    RangeSpec,
    Wire,
)
from afterload.flow.errors import ProtocolError


def _b64(value: Any) -> bytes:
    """Decode protobuf-JSON ``bytes``: standard or URL-safe alphabet, padding optional."""
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueError("is not a base64 string")
    text = value.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not valid base64") from None


Packed = Annotated[bytes, BeforeValidator(_b64)]


class Spec(Wire):
    connector_type: str = ""
    config: Json = None


class ValidateBinding(Wire):
    resource_config: Json = None
    collection: CollectionSpec
    field_config: dict[str, Json] = Field(default_factory=dict)
    backfill: int = 0
    group_by: list[str] = Field(default_factory=list)


class Validate(Wire):
    name: str
    connector_type: str = ""
    config: Json = None
    bindings: list[ValidateBinding] = Field(default_factory=list)
    last_materialization: MaterializationSpec | None = None
    last_version: str = ""


class Apply(Wire):
    materialization: MaterializationSpec
    version: str = ""
    last_materialization: MaterializationSpec | None = None
    last_version: str = ""
    state: Json = None


class Open(Wire):
    materialization: MaterializationSpec
    version: str = ""
    range: RangeSpec = Field(default_factory=RangeSpec)
    state: Json = None


class Load(Wire):
    binding: int = Field(default=0, ge=0)
    key: Json = None
    key_packed: Packed = b""


class Flush(Wire):
    state_patches: list[Json] | None = None


class Store(Wire):
    binding: int = Field(default=0, ge=0)
    key: Json = None
    key_packed: Packed = b""
    values: Json = None
    values_packed: Packed = b""
    doc: Json = None
    exists: bool = False
    delete: bool = False


class StartCommit(Wire):
    #: Opaque to the connector: committed with the data and handed back in Opened.
    runtime_checkpoint: dict[str, Json]
    state_patches: list[Json] | None = None


class Acknowledge(Wire):
    state_patches: list[Json] | None = None


Request = Spec | Validate | Apply | Open | Load | Flush | Store | StartCommit | Acknowledge

#: Wire key → model, in the protocol's field order.
REQUESTS: dict[str, type[Wire]] = {
    "spec": Spec,
    "validate": Validate,
    "apply": Apply,
    "open": Open,
    "load": Load,
    "flush": Flush,
    "store": Store,
    "startCommit": StartCommit,
    "acknowledge": Acknowledge,
}

#: Model → the message's name as the protocol spells it, for errors and logs.
NAMES: dict[type[Wire], str] = {model: model.__name__ for model in REQUESTS.values()}


def _preview(line: bytes) -> str:
    text = line[:80].decode("utf-8", "replace")
    return text + ("…" if len(line) > 80 else "")


def _first_problem(err: ValidationError) -> str:
    first = err.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "(message)"
    return f"{where} {first['msg'].lower()}"


def parse_request(line: bytes) -> Request:
    """One line of the runtime's stdin → the one message it carries, or ProtocolError."""
    try:
        envelope = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise ProtocolError(f"request is not JSON: {_preview(line)}") from None
    if not isinstance(envelope, dict):
        raise ProtocolError(f"request is not a JSON object: {_preview(line)}")
    present = [key for key in REQUESTS if key in envelope and envelope[key] is not None]
    if len(present) != 1:
        said = ", ".join(present) if present else "none"
        raise ProtocolError(
            f"request must set exactly one of {', '.join(REQUESTS)}, but sets {said}: "
            f"{_preview(line)}"
        )
    key = present[0]
    model = REQUESTS[key]
    try:
        return model.model_validate(envelope[key])  # type: ignore[return-value]
    except ValidationError as err:
        raise ProtocolError(f"{model.__name__} request: {_first_problem(err)}") from None
