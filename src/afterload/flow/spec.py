"""The Spec response: protocol version, both config schemas, where the docs are.

Pydantic writes ``$defs``/``$ref``; Flow's UI renders forms from the schema and expects the
annotations (``secret``, ``x-collection-name`` …) on the properties themselves, so the
references are inlined into one self-contained schema per config.
"""

from __future__ import annotations

from typing import Any

from afterload.flow.config import EndpointConfig, ResourceConfig
from afterload.flow.response import PROTOCOL, Spec

DOCUMENTATION_URL = "https://docs.estuary.dev/concepts/materialization/"  # TODO: afterload docs


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace every local ``$ref`` with its definition and drop ``$defs``."""
    defs: dict[str, Any] = schema.get("$defs", {})

    def walk(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [walk(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name in seen:
                raise ValueError(f"schema definition {name} refers to itself")
            siblings = {k: walk(v, seen) for k, v in node.items() if k != "$ref"}
            return {**walk(defs[name], (*seen, name)), **siblings}
        return {k: walk(v, seen) for k, v in node.items() if k != "$defs"}

    inlined: dict[str, Any] = walk(schema, ())
    return inlined


def config_schema() -> dict[str, Any]:
    return inline_refs(EndpointConfig.model_json_schema(by_alias=True))


def resource_config_schema() -> dict[str, Any]:
    return inline_refs(ResourceConfig.model_json_schema(by_alias=True))


def spec_response() -> Spec:
    return Spec(
        protocol=PROTOCOL,
        config_schema=config_schema(),
        resource_config_schema=resource_config_schema(),
        documentation_url=DOCUMENTATION_URL,
    )
