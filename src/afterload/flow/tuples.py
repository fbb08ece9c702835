"""Keys and values as Flow packs them: FoundationDB tuples, decoded with FoundationDB's codec.

The runtime fills only ``keyPacked``/``valuesPacked`` in Load and Store. Flow packs each
JSON value as the tuple element of its kind — null, booleans, integers (64-bit in Flow,
arbitrary here), doubles, strings (NUL and any Unicode) — except objects and arrays, which
it packs as a byte string holding their JSON text. Decoding reverses that; nested tuples,
UUIDs and versionstamps never come from Flow and are refused.

``fdb.tuple`` is the pure-Python codec of the ``foundationdb`` package: it needs no libfdb_c.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import fdb.tuple  # type: ignore[import-untyped]

from afterload.core import exactjson
from afterload.flow.errors import ProtocolError

_PLAIN = frozenset({type(None), bool, int, float, str})


def _element(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        try:
            parsed = exactjson.loads(value)
        except (UnicodeDecodeError, ValueError):
            # Not JSON text: a binary value, which JSON carries as base64.
            return base64.b64encode(value).decode("ascii")
        if isinstance(parsed, dict | list):
            return parsed
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, fdb.tuple.SingleFloat):
        return float(value.value)
    raise ProtocolError(f"{where} holds a {type(value).__name__} element, which Flow never packs")


def unpack(packed: bytes, where: str = "packed tuple") -> list[Any]:
    """A packed tuple → its JSON values, in order; ``where`` names it in errors."""
    try:
        elements = fdb.tuple.unpack(packed)
    except Exception as err:  # the codec raises ValueError, IndexError, struct.error …
        raise ProtocolError(f"{where} is not a FoundationDB tuple ({err})") from None
    plain = _PLAIN
    return [v if type(v) in plain else _element(v, where) for v in elements]


def unpack_b64(text: str, where: str = "packed tuple") -> list[Any]:
    """Base64 text (as on the wire) → JSON values."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise ProtocolError(f"{where} is not valid base64") from None
    return unpack(raw, where)


def _pack_element(value: Any) -> Any:
    if isinstance(value, dict | list):
        # Flow writes compact JSON text (serde_json's form) into a byte string.
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def pack(values: Sequence[Any]) -> bytes:
    """JSON values → a packed tuple, as Flow's runtime packs them (used by the stand-in)."""
    return bytes(fdb.tuple.pack(tuple(_pack_element(v) for v in values)))


def pack_b64(values: Sequence[Any]) -> str:
    return base64.b64encode(pack(values)).decode("ascii")
