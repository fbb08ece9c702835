"""A JSON Schema ``type`` JSON Schema does not have is a config error naming file, line and
property. Before, ``{"type": "strnig"}`` was taken silently and made its property a JSON
column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from afterload.core.jsonschema import load_json_schema
from afterload.core.schema import SchemaError
from afterload.ndjson.validation import binding_problems
from tests.materialize_support import write_config

TYPO = '{\n  "properties": {\n    "id": {"type": "integer"},\n    "x": {"type": "strnig"}\n  }\n}\n'


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        (TYPO, ":4: property 'x' has the type 'strnig'"),
        ('{"properties": {"x": {"type": ["null", "String"]}}}', ":1: property 'x' has the type"),
        ('{"properties": {"x": {"type": 5}}}', ": property 'x' has the type '5'"),
        (
            '{"properties": {"o": {"type": "object", "properties": {"k": {"type": "numbr"}}}}}',
            ":1: the schema at /properties/o/properties/k has the type 'numbr'",
        ),
        (
            '{"properties": {"a": {"type": "array", "items": {"type": "int"}}}}',
            ":1: the schema at /properties/a/items has the type 'int'",
        ),
    ],
)
def test_an_unknown_type_is_refused(tmp_path: Path, schema: str, where: str) -> None:
    path = tmp_path / "t.schema.json"
    path.write_text(schema)
    with pytest.raises(SchemaError) as info:
        load_json_schema("t", path)
    assert str(info.value).startswith(f"t: {path}{where}"), str(info.value)
    assert str(info.value).endswith(
        "(it has array, boolean, integer, null, number, object, string)"
    )


def test_every_known_type_is_taken(tmp_path: Path) -> None:
    types = ["array", "boolean", "integer", "null", "number", "object", "string"]
    schema = {
        "properties": {
            **{t: {"type": t} for t in types},
            "both": {"type": ["integer", "null"], "items": [{"type": "string"}]},
            "type": {"type": "string"},  # a property named type is no type
        }
    }
    path = tmp_path / "t.schema.json"
    path.write_text(json.dumps(schema))
    assert load_json_schema("t", path) == schema


def test_check_names_the_binding_the_file_and_the_line(tmp_path: Path) -> None:
    (tmp_path / "t.schema.json").write_text(TYPO)
    block = {"source": "d/*.jsonl", "table": "t", "key": ["/id"], "schema": "t.schema.json"}
    loaded = write_config(tmp_path, [block])
    (problem,) = binding_problems(loaded)
    assert problem.startswith(f"{tmp_path / 'afterload.yaml'}:"), problem
    assert f"bindings[0].schema: {tmp_path / 't.schema.json'}:4: property 'x'" in problem
