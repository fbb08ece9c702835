"""Validate's constraints, the configs and the Spec, decided as Estuary's SQL connectors do."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from afterload.errors import ConfigError
from afterload.flow.catalog import (
    CollectionSpec,
    Inference,
    MaterializationBinding,
    MaterializationSpec,
    Projection,
)
from afterload.flow.config import parse_endpoint, parse_resource
from afterload.flow.constraints import InvalidBinding, base_constraint, validate_binding
from afterload.flow.request import ValidateBinding
from afterload.flow.response import ConstraintType as T
from afterload.flow.response import encode_response
from afterload.flow.spec import spec_response


class DuckTypes:
    """A small type map in the shape phase 2's destinations will give (DuckDB's names)."""

    MAP: ClassVar[dict[str, str]] = {
        "integer": "BIGINT",
        "number": "DOUBLE",
        "boolean": "BOOLEAN",
        "string": "VARCHAR",
    }

    def column_type(self, projection: Projection, field_config: Any) -> str:
        types = [t for t in projection.inference.types if t != "null"]
        return self.MAP.get(types[0], "JSON") if len(types) == 1 else "JSON"

    def compatible(self, existing: str, proposed: str) -> bool:
        return existing == proposed or (existing, proposed) == ("DOUBLE", "BIGINT")


def proj(
    field: str, *types: str, ptr: str | None = None, key: bool = False, fmt: str = ""
) -> Projection:
    inference: dict[str, Any] = {"types": list(types), "exists": "MUST"}
    if fmt:
        inference["string"] = {"format": fmt}
    return Projection(
        field=field,
        ptr="/" + field if ptr is None else ptr,
        is_primary_key=key,
        inference=Inference.model_validate(inference),
    )


PROJECTIONS = [
    proj("id", "integer", key=True),
    proj("flow_document", "object", ptr=""),
    proj("amount", "number"),
    proj("note", "string", "null"),
    proj("price", "string", fmt="number"),
    proj("address", "object"),
    proj("tags", "array"),
    proj("mixed", "string", "integer"),
    proj("nothing"),
    proj("nulls", "null"),
    proj("_meta/op", "string"),
    proj("_meta/uuid", "string"),
    proj("flow_published_at", "string", fmt="date-time", ptr="/_meta/uuid"),
]


def binding(projections: list[Projection] = PROJECTIONS, backfill: int = 0) -> ValidateBinding:
    return ValidateBinding(
        resource_config={"table": "orders"},
        collection=CollectionSpec(name="shop/orders", key=["/id"], projections=projections),
        backfill=backfill,
    )


def test_new_table_standard_updates() -> None:
    v = validate_binding(
        binding(), parse_resource({"table": "orders"}, 0), existing=None, types=DuckTypes()
    )
    got = {f: c.type for f, c in v.constraints.items()}
    assert got == {
        "id": T.LOCATION_REQUIRED,
        "flow_document": T.LOCATION_REQUIRED,
        "amount": T.LOCATION_RECOMMENDED,
        "note": T.LOCATION_RECOMMENDED,
        "price": T.LOCATION_RECOMMENDED,
        "address": T.FIELD_OPTIONAL,
        "tags": T.LOCATION_RECOMMENDED,
        "mixed": T.LOCATION_RECOMMENDED,
        "nothing": T.FIELD_FORBIDDEN,
        "nulls": T.FIELD_FORBIDDEN,
        "_meta/op": T.LOCATION_RECOMMENDED,
        "_meta/uuid": T.FIELD_OPTIONAL,
        "flow_published_at": T.FIELD_FORBIDDEN,  # every collection has it; afterload fills it
    }
    assert v.resource_path == ["orders"] and not v.delta_updates
    assert all(c.reason for c in v.constraints.values())


def test_delta_updates_and_schema_in_the_path() -> None:
    resource = parse_resource({"table": "events", "schema": "raw", "delta_updates": True}, 0)
    v = validate_binding(binding(), resource, existing=None, types=DuckTypes())
    assert v.constraints["id"].type is T.LOCATION_RECOMMENDED
    assert v.constraints["flow_document"].type is T.LOCATION_RECOMMENDED
    assert v.resource_path == ["raw", "events"] and v.delta_updates
    assert json.loads(encode_response_v(v))["deltaUpdates"] is True


def encode_response_v(v: Any) -> bytes:
    from afterload.flow.response import Validated

    return json.dumps(
        json.loads(encode_response(Validated(bindings=[v])))["validated"]["bindings"][0]
    ).encode()


def test_a_conflicting_column_is_incompatible_naming_table_column_and_types() -> None:
    resource = parse_resource({"table": "orders", "schema": "raw"}, 0)
    existing = {"id": "BIGINT", "amount": "VARCHAR", "note": "VARCHAR", "flow_document": "JSON"}
    v = validate_binding(binding(), resource, existing=existing, types=DuckTypes())
    amount = v.constraints["amount"]
    assert amount.type is T.INCOMPATIBLE
    for word in ("raw.orders", "'amount'", "VARCHAR", "DOUBLE"):
        assert word in amount.reason
    assert v.constraints["note"].type is T.LOCATION_RECOMMENDED
    assert v.constraints["id"].type is T.LOCATION_REQUIRED
    # A backfill recreates the table: the old column no longer constrains.
    last = MaterializationSpec(
        name="m",
        bindings=[
            MaterializationBinding(
                resource_path=["raw", "orders"],
                collection=CollectionSpec(name="shop/orders"),
                backfill=0,
            )
        ],
    )
    v2 = validate_binding(
        binding(backfill=1), resource, existing=existing, types=DuckTypes(), last=last
    )
    assert v2.constraints["amount"].type is T.LOCATION_RECOMMENDED


def test_second_root_document_and_nullable_keys() -> None:
    two_roots = [*PROJECTIONS, proj("doc_again", "object", ptr="")]
    v = validate_binding(
        binding(two_roots), parse_resource({"table": "t"}, 0), existing=None, types=DuckTypes()
    )
    assert v.constraints["doc_again"].type is T.FIELD_FORBIDDEN
    nullable_key = [proj("id", "integer", "null", key=True)]
    with pytest.raises(InvalidBinding, match="key field id"):
        validate_binding(
            binding(nullable_key),
            parse_resource({"table": "t"}, 0),
            existing=None,
            types=DuckTypes(),
        )


def test_delta_cannot_become_standard() -> None:
    last = MaterializationSpec(
        name="m",
        bindings=[
            MaterializationBinding(
                resource_path=["t"], collection=CollectionSpec(name="c"), delta_updates=True
            )
        ],
    )
    with pytest.raises(InvalidBinding, match="cannot become standard"):
        validate_binding(
            binding(),
            parse_resource({"table": "t"}, 0),
            existing=None,
            types=DuckTypes(),
            last=last,
        )


type_names = st.sampled_from(["null", "integer", "number", "boolean", "string", "object", "array"])


@given(st.lists(type_names, max_size=4, unique=True), st.text(min_size=1), st.booleans())
def test_every_projection_gets_exactly_one_constraint_with_a_reason(
    types: list[str], field: str, delta: bool
) -> None:
    c = base_constraint(proj(field, *types), delta)
    assert c.reason
    if not [t for t in types if t != "null"]:
        assert c.type is T.FIELD_FORBIDDEN or field == "_meta/op"


def test_endpoint_config_estuary_keys() -> None:
    cfg = parse_endpoint(
        {
            "destination": {
                "postgres": {"dsn": "postgresql://u@127.0.0.1/test", "password": "s3cret"}
            },
            "hardDelete": True,
            "dbt_job_trigger": {
                "job_id": "",
                "account_id": "",
                "api_key": "",
                "cause": "",
                "mode": "skip",
                "interval": "30m",
            },
            "syncSchedule": {"syncFrequency": "5m", "timezone": "", "fastSyncStartTime": ""},
        }
    )
    assert cfg.hardDelete and cfg.dbt_job_trigger.trigger() is None
    assert cfg.syncSchedule.sync_frequency == "5m" and cfg.syncSchedule.timezone is None
    assert "s3cret" not in repr(cfg)
    full = parse_endpoint(
        {
            "destination": {"duckdb": {}},
            "dbt_job_trigger": {
                "job_id": "42",
                "account_id": 7,
                "api_key": "dbtc_x",
                "access_url": "https://ab.us1.dbt.com/",
            },
        }
    )
    trigger = full.dbt_job_trigger.trigger()
    assert (
        trigger is not None
        and trigger.job_id == 42
        and trigger.account_id == 7
        and trigger.cause == "Estuary Flow"
    )
    assert not full.hardDelete


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (
            {
                "destination": {"duckdb": {}},
                "dbt_job_trigger": {"job_id": "1", "api_key": "SECRET-KEY"},
            },
            "missing account_id, access_url",
        ),
        ({"destination": {"duckdb": {}, "postgres": {}}}, "exactly one"),
        ({"destination": {"duckdb": {}}, "hardDelet": True}, "hardDelet"),
        (
            {
                "destination": {"duckdb": {}},
                "dbt_job_trigger": {
                    "job_id": "1",
                    "account_id": "2",
                    "api_key": "SECRET-KEY",
                    "access_url": "http://example.com",
                },
            },
            "access_url",
        ),
    ],
)
def test_endpoint_config_errors_name_the_key_never_the_secret(
    raw: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        parse_endpoint(raw)
    assert "SECRET-KEY" not in str(info.value)


def test_spec_response() -> None:
    spec = json.loads(encode_response(spec_response()))["spec"]
    assert spec["protocol"] == 3032023 and spec["documentationUrl"].startswith("https://")
    text = json.dumps(spec)
    assert "$ref" not in text and "$defs" not in text
    props = spec["configSchema"]["properties"]
    assert set(props) == {"destination", "hardDelete", "dbt_job_trigger", "syncSchedule"}
    assert props["dbt_job_trigger"]["properties"]["api_key"]["secret"] is True
    assert (
        props["destination"]["properties"]["postgres"]["anyOf"][0]["properties"]["password"][
            "secret"
        ]
        is True
    )
    assert set(props["syncSchedule"]["properties"]) >= {
        "syncFrequency",
        "timezone",
        "fastSyncStartTime",
        "fastSyncStopTime",
        "fastSyncEnabledDays",
    }
    resource = spec["resourceConfigSchema"]["properties"]
    assert resource["table"]["x-collection-name"] is True
    assert resource["schema"]["x-schema-name"] is True
    assert resource["delta_updates"]["x-delta-updates"] is True
    assert spec["resourceConfigSchema"]["required"] == ["table"]


def test_fields_differing_only_in_case_keep_one_column() -> None:
    """Before, both were recommended, and Open refused the selection they made."""
    projections = [proj("id", "integer", key=True), proj("v", "string"), proj("V", "string")]
    out = validate_binding(
        binding(projections), parse_resource({"table": "t"}, 0), existing=None, types=DuckTypes()
    )
    assert out.constraints["v"].type is T.LOCATION_RECOMMENDED
    assert out.constraints["V"].type is T.FIELD_FORBIDDEN
    assert "same as field 'v'" in out.constraints["V"].reason
    # A key is never the one forbidden.
    projections = [proj("ID", "string"), proj("id", "integer", key=True)]
    out = validate_binding(
        binding(projections), parse_resource({"table": "t"}, 0), existing=None, types=DuckTypes()
    )
    assert out.constraints["id"].type is T.LOCATION_REQUIRED
    assert out.constraints["ID"].type is T.FIELD_FORBIDDEN


def test_a_changed_collection_key_needs_a_backfill() -> None:
    last = MaterializationSpec(
        name="m",
        bindings=[
            MaterializationBinding(
                resource_path=["t"], collection=CollectionSpec(name="c", key=["/id"])
            )
        ],
    )
    base = binding()
    changed = base.model_copy(
        update={"collection": base.collection.model_copy(update={"key": ["/id", "/k"]})}
    )
    with pytest.raises(InvalidBinding, match=r"key changed from \['/id'\] to \['/id', '/k'\]"):
        validate_binding(
            changed, parse_resource({"table": "t"}, 0), existing=None, types=DuckTypes(), last=last
        )
    backfilled = changed.model_copy(update={"backfill": 1})  # recreates the table: key is free
    validate_binding(
        backfilled, parse_resource({"table": "t"}, 0), existing=None, types=DuckTypes(), last=last
    )
