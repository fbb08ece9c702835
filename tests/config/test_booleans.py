"""A config boolean is true or false, nothing else.

Before, pydantic's lax mode took ``"yes"``, ``"off"``, ``"y"``, ``1`` or ``0`` for any boolean
key: ``delta_updates: 1`` silently made a keyed binding append-only. YAML's own booleans (and
its unquoted ``yes``/``no``, which the YAML loader reads as booleans) keep working.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic.types import Strict

from afterload.config import parse_config
from afterload.config.model import Config
from afterload.errors import ConfigError
from afterload.flow.config import EndpointConfig, ResourceConfig, parse_endpoint, parse_resource

BINDING = "bindings:\n  - source: d/*.jsonl\n    table: t\n    key: [/id]\n"
TRIGGER = (
    "dbt_job_trigger:\n  access_url: https://ab123.us1.dbt.com/\n  account_id: 12\n"
    '  job_id: "34"\n  api_key: dbtc_secret_value\n'
)
FIELDS = {
    "delta_updates": (BINDING, "    delta_updates: %s\n", 5, "bindings[0].delta_updates"),
    "hard_delete": (BINDING, "    hard_delete: %s\n", 5, "bindings[0].hard_delete"),
    "store_document": (BINDING, "    store_document: %s\n", 5, "bindings[0].store_document"),
    "rerun_failed": (TRIGGER, "  rerun_failed: %s\n", 6, "dbt_job_trigger.rerun_failed"),
}
NOT_BOOLEANS = ['"yes"', '"no"', '"on"', '"off"', '"y"', '"n"', '"true"', "1", "0", "1.0"]


@pytest.mark.parametrize("field", sorted(FIELDS))
@pytest.mark.parametrize("value", NOT_BOOLEANS)
def test_a_boolean_key_takes_only_true_or_false(field: str, value: str) -> None:
    base, line, number, where = FIELDS[field]
    with pytest.raises(ConfigError) as info:
        parse_config(base + line % value, Path("c.yaml"))
    assert info.value.problems == [f"c.yaml:{number}: {where}: must be true or false"]


@pytest.mark.parametrize("field", sorted(FIELDS))
@pytest.mark.parametrize(("value", "meant"), [("true", True), ("no", False), ("False", False)])
def test_yaml_booleans_still_work(field: str, value: str, meant: bool) -> None:
    base, line, _, _ = FIELDS[field]
    config = parse_config(base + line % value, Path("c.yaml"))
    block: Any = config.bindings[0] if base is BINDING else config.dbt_job_trigger
    assert getattr(block, field) is meant


@pytest.mark.parametrize("value", ["yes", 1, 0, "false"])
def test_the_flow_endpoint_takes_only_json_booleans(value: Any) -> None:
    endpoint = {"destination": {"duckdb": {"path": "w.duckdb"}}}
    with pytest.raises(ConfigError, match="hardDelete: must be true or false"):
        parse_endpoint({**endpoint, "hardDelete": value})
    with pytest.raises(ConfigError, match="delta_updates: must be true or false"):
        parse_resource({"table": "t", "delta_updates": value}, 0)
    assert parse_endpoint({**endpoint, "hardDelete": True}).hardDelete is True
    assert parse_resource({"table": "t", "schema": "", "delta_updates": False}, 0).schema_ is None


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    if model in seen:
        return
    seen.add(model)
    for field in model.model_fields.values():
        stack: list[Any] = [field.annotation]
        while stack:
            kind = stack.pop()
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                _models(kind, seen)
            stack.extend(typing.get_args(kind))
            if isinstance(kind, types.UnionType):
                stack.extend(kind.__args__)


def test_every_boolean_of_every_config_model_is_strict() -> None:
    """A boolean key added later cannot be lax by mistake."""
    seen: set[type[BaseModel]] = set()
    for root in (Config, EndpointConfig, ResourceConfig):
        _models(root, seen)
    lax = [
        f"{model.__name__}.{name}"
        for model in seen
        for name, field in model.model_fields.items()
        if bool in (field.annotation, *typing.get_args(field.annotation))
        and not any(isinstance(m, Strict) and m.strict for m in field.metadata)
    ]
    assert len(seen) > 10 and lax == []
