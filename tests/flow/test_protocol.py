"""Every message parses as the runtime's JSON codec writes it; what is not understood fails
with a sentence naming the message; responses encode as the runtime reads them."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from afterload.flow import request as rq
from afterload.flow import response as rs
from afterload.flow.catalog import ConnectorState
from afterload.flow.errors import ProtocolError
from afterload.flow.request import parse_request
from afterload.flow.tuples import pack, unpack

PROJECTION = {
    "ptr": "/id",
    "field": "id",
    "isPrimaryKey": True,
    "explicit": True,
    "inference": {
        "types": ["integer"],
        "string": {"format": "integer", "contentEncoding": "base64", "maxLength": 9},
        "exists": "MUST",
        "default": {"any": "json"},
        "numeric": {"hasMinimum": True, "minimum": -5.0},
        "reduce": "REDUCE_MERGE",
        "futureInferenceField": [1, 2],
    },
}
COLLECTION = {
    "name": "shop/orders",
    "writeSchema": {"type": "object"},
    "readSchema": {"type": "object", "x": 1},
    "key": ["/id", "/region"],
    "uuidPtr": "/_meta/uuid",
    "partitionFields": ["region"],
    "projections": [PROJECTION, {"field": "flow_document", "inference": {"types": ["object"]}}],
    "ackTemplate": {"ack": True},
    "partitionTemplate": {"name": "p", "replication": 3, "fragment": {"length": "99"}},
}
BINDING = {
    "resourceConfig": {"table": "orders", "schema": "raw"},
    "resourcePath": ["raw", "orders"],
    "collection": COLLECTION,
    "partitionSelector": {"include": {"labels": [{"name": "a", "value": "b"}]}},
    "priority": 2,
    "fieldSelection": {
        "keys": ["id"],
        "values": ["amount"],
        "document": "flow_document",
        "fieldConfig": {"amount": {"x": 1}},
    },
    "journalReadSuffix": "materialize/shop/m/orders.v1",
    "notBefore": "2024-01-01T00:00:00+00:00",
    "backfill": 2,
    "stateKey": "orders.v1",
    "serPolicy": {"strTruncateAfter": 100},
    "deltaUpdates": True,
}
MATERIALIZATION = {
    "name": "shop/m",
    "connectorType": "IMAGE",
    "config": {"destination": {"duckdb": {"path": "x.duckdb"}}},
    "bindings": [BINDING],
    "shardTemplate": {"id": "s", "maxTxnDuration": "1s"},
    "recoveryLogTemplate": {"name": "r"},
    "networkPorts": [{"number": 8080}],
    "triggers": [{"url": "https://example.invalid/hook"}],
}
CHECKPOINT = {
    "sources": {
        "shop/orders/pivot=00;materialize/shop/m/orders.v1": {
            "readThrough": "98765",
            "producers": [{"id": "AQIDBAU=", "state": {"lastAck": "7", "begin": "-1"}}],
        }
    },
    "ackIntents": {"ack/journal": "BAUG"},
}
KEY = base64.b64encode(pack([42, "hé\x00"])).decode()
VALUES = base64.b64encode(pack([3.25, {"nested": [1, None]}])).decode()

#: One of every request, with every field the protocol defines and some it may add later.
REQUESTS: dict[str, dict[str, Any]] = {
    "spec": {"connectorType": "IMAGE", "config": {"image": "afterload"}},
    "validate": {
        "name": "shop/m",
        "connectorType": "IMAGE",
        "config": {"k": "v"},
        "bindings": [
            {
                "resourceConfig": {"table": "orders"},
                "collection": COLLECTION,
                "fieldConfig": {"id": {"a": 1}, "other/field": 4.5},
                "backfill": 3,
                "groupBy": ["id"],
            }
        ],
        "lastMaterialization": MATERIALIZATION,
        "lastVersion": "00:11",
    },
    "apply": {
        "materialization": MATERIALIZATION,
        "version": "11:22",
        "lastMaterialization": MATERIALIZATION,
        "lastVersion": "00:11",
        "state": {"connector": "state"},
    },
    "open": {
        "materialization": MATERIALIZATION,
        "version": "11:22",
        "range": {"keyBegin": 10, "keyEnd": 4000000000, "rClockBegin": 1, "rClockEnd": 99},
        "state": {"connector": {"state": 42}},
    },
    "load": {"binding": 3, "key": [42, "hé\x00"], "keyPacked": KEY},
    "flush": {"statePatches": [{"flushed": 1}], "connectorStatePatchesJson": "[]"},
    "store": {
        "binding": 1,
        "key": [42, "hé\x00"],
        "keyPacked": KEY,
        "values": [3.25, {"nested": [1, None]}],
        "valuesPacked": VALUES,
        "doc": {"id": 42, "big": 18446744073709551615},
        "exists": True,
        "delete": True,
    },
    "startCommit": {
        "runtimeCheckpoint": CHECKPOINT,
        "statePatches": [{"started": "commit"}],
        "connectorStatePatchesJson": "[]",
    },
    "acknowledge": {"statePatches": [{"acked": True}], "statePatchesJson": "[{}]"},
}


def line(key: str, body: Any, **extra: Any) -> bytes:
    return json.dumps({key: body, **extra}).encode()


@pytest.mark.parametrize("key", list(REQUESTS))
def test_every_request_parses_with_unknown_fields(key: str) -> None:
    message = parse_request(line(key, REQUESTS[key], **{"$internal": "EgJIaRgB"}))
    assert type(message) is rq.REQUESTS[key]


def test_fields_land_where_they_belong() -> None:
    open_ = parse_request(line("open", REQUESTS["open"]))
    assert isinstance(open_, rq.Open)
    assert open_.range.key_end == 4000000000 and open_.range.r_clock_end == 99
    b = open_.materialization.bindings[0]
    assert b.delta_updates and b.backfill == 2 and b.resource_path == ["raw", "orders"]
    assert b.field_selection.values == ["amount"] and b.field_selection.document == "flow_document"
    p = b.collection.projections[0]
    assert p.is_primary_key and p.inference.exists == "MUST" and p.inference.string is not None
    assert p.inference.string.format == "integer"
    assert b.collection.projections[1].is_root_document

    store = parse_request(line("store", REQUESTS["store"]))
    assert isinstance(store, rq.Store)
    assert unpack(store.key_packed) == [42, "hé\x00"]
    assert unpack(store.values_packed) == [3.25, {"nested": [1, None]}]
    assert store.exists and store.delete and store.doc["big"] == 18446744073709551615

    commit = parse_request(line("startCommit", REQUESTS["startCommit"]))
    assert isinstance(commit, rq.StartCommit)
    assert commit.runtime_checkpoint == CHECKPOINT  # opaque, untouched


def test_defaults_when_the_codec_omits_zero_values() -> None:
    load = parse_request(b'{"load":{"keyPacked":"FQE="}}')
    assert isinstance(load, rq.Load) and load.binding == 0 and unpack(load.key_packed) == [1]
    store = parse_request(b'{"store":{"keyPacked":"FQI=","valuesPacked":"","doc":{}}}')
    assert isinstance(store, rq.Store) and not store.exists and not store.delete
    assert isinstance(parse_request(b'{"acknowledge":{}}'), rq.Acknowledge)
    open_ = parse_request(b'{"open":{"materialization":{"name":"m"}}}')
    assert isinstance(open_, rq.Open) and open_.range.key_end == 0


@pytest.mark.parametrize(
    "raw",
    ["FQE", "FQE=", "-_8=", "-_8"],  # padding optional, URL-safe alphabet accepted
)
def test_base64_forms(raw: str) -> None:
    load = parse_request(line("load", {"keyPacked": raw}))
    assert isinstance(load, rq.Load)
    assert load.key_packed == base64.b64decode(
        raw.replace("-", "+").replace("_", "/") + "=" * (-len(raw) % 4)
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"bogus":{}}', "sets none"),
        (b"{}", "sets none"),
        (b'{"load":{},"flush":{}}', "sets load, flush"),
        (b'{"load":null}', "sets none"),
        (b"[1]", "not a JSON object"),
        (b"{nope", "not JSON"),
        (b'{"load":{"binding":-1}}', "Load request: binding"),
        (b'{"load":{"keyPacked":"***"}}', "Load request: keyPacked"),
        (b'{"startCommit":{}}', "StartCommit request: runtimeCheckpoint"),
        (b'{"open":{}}', "Open request: materialization"),
        (b'{"validate":{"bindings":[{}]}}', "Validate request: name"),
    ],
)
def test_what_is_not_understood_names_the_message(raw: bytes, expected: str) -> None:
    with pytest.raises(ProtocolError, match=expected) as info:
        parse_request(raw)
    assert "\n" not in str(info.value)


def test_responses_encode_as_the_codec_writes_them() -> None:
    state = ConnectorState(updated={"k": 1}, merge_patch=True)
    cases: list[tuple[rs.Response, dict[str, Any]]] = [
        (rs.Opened(), {"opened": {}}),
        (rs.Opened(runtime_checkpoint=CHECKPOINT), {"opened": {"runtimeCheckpoint": CHECKPOINT}}),
        (rs.Loaded(binding=0, doc={"a": 1}), {"loaded": {"binding": 0, "doc": {"a": 1}}}),
        (rs.Flushed(), {"flushed": {}}),
        (
            rs.StartedCommit(state=state),
            {"startedCommit": {"state": {"updated": {"k": 1}, "mergePatch": True}}},
        ),
        (
            rs.Acknowledged(state=ConnectorState(updated={})),
            {"acknowledged": {"state": {"updated": {}}}},
        ),
        (
            rs.Applied(action_description="CREATE TABLE x"),
            {"applied": {"actionDescription": "CREATE TABLE x"}},
        ),
        (
            rs.Validated(
                bindings=[
                    rs.ValidatedBinding(
                        constraints={
                            "id": rs.Constraint(
                                type=rs.ConstraintType.LOCATION_REQUIRED, reason="key"
                            )
                        },
                        resource_path=["orders"],
                    )
                ]
            ),
            {
                "validated": {
                    "bindings": [
                        {
                            "constraints": {"id": {"type": "LOCATION_REQUIRED", "reason": "key"}},
                            "resourcePath": ["orders"],
                        }
                    ]
                }
            },
        ),
    ]
    for message, expected in cases:
        encoded = rs.encode_response(message)
        assert encoded.endswith(b"\n") and encoded.count(b"\n") == 1
        assert json.loads(encoded) == expected


def test_loaded_fast_path_and_big_integers() -> None:
    assert json.loads(rs.encode_loaded(2, b'{"x":"\\u0000"}')) == {
        "loaded": {"binding": 2, "doc": {"x": "\x00"}}
    }
    big = rs.encode_response(rs.Loaded(binding=1, doc={"n": 2**80}))
    assert json.loads(big)["loaded"]["doc"]["n"] == 2**80
