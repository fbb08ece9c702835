"""A column declared ``integer`` takes a number written with a fraction or an exponent only when
its text is an integer a destination reads exactly, on both destinations.

Before, the check looked at the parsed double: ``0.99999999999999999999`` (read as ``1.0``)
landed as 1 and ``9007199254740993.0`` as 9007199254740992, without a word.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from afterload.cli.run import run_materialization
from afterload.core.documents import DocumentParser
from afterload.core.jsonschema import shape_from_json_schema
from afterload.core.schema import LineProblem
from tests.materialize_support import Warehouse, write_config, write_lines

SCHEMA = {"type": "object", "properties": {"id": {"type": "integer"}, "n": {"type": "integer"}}}
GOOD = {1: ("2.0", 2), 2: ("1e2", 100), 3: ("-0.0", 0), 4: ("9007199254740992.0", 2**53)}
BAD = {
    10: ("0.99999999999999999999", "is not an integer"),
    11: ("9007199254740993.0", "too large to be read as an exact integer"),
    12: ("2.0000000000000001", "is not an integer"),
    13: ("1.5", "is not an integer"),
    14: ("1e300", "too large to be read as an exact integer"),
}


def parser() -> DocumentParser:
    shape = shape_from_json_schema("t", ["/id"], SCHEMA, delta=False)
    return DocumentParser(shape, ["/id"], hard_delete=False)


@pytest.mark.parametrize(("text", "why"), BAD.values())
def test_the_text_decides_not_the_double(text: str, why: str) -> None:
    with pytest.raises(LineProblem, match=f"^/n {re.escape(str(Decimal(text)))} .*{why}"):
        parser().parse(f'{{"id": 1, "n": {text}}}'.encode())


def test_integral_texts_are_taken_as_their_integer() -> None:
    p = parser()
    for text, _ in GOOD.values():
        p.parse(f'{{"id": 1, "n": {text}}}'.encode())
    # A float never widens a declared column, and an integer still fits it afterwards.
    assert p.shape.columns["n"].type.value == "BIGINT"
    p.parse(b'{"id": 1, "n": 5}')


@pytest.mark.parametrize("many", [False, True], ids=["exact path", "surveyed"])
def test_end_to_end(tmp_path: Path, warehouse: Warehouse, many: bool) -> None:
    (tmp_path / "t.schema.json").write_text(json.dumps(SCHEMA))
    block = {
        "source": "t.jsonl",
        "table": "t",
        "key": ["/id"],
        "schema": "t.schema.json",
        "rejects": "rejects.jsonl",
    }
    loaded = write_config(tmp_path, [block], warehouse=warehouse)
    # Plain lines first (enough for a survey), then the numbers under test.
    plain = [{"id": 1000 + i, "n": i} for i in range(500 if many else 0)]
    lines = [f'{{"id": {i}, "n": {text}}}' for i, (text, _) in {**GOOD, **BAD}.items()]
    write_lines(tmp_path / "t.jsonl", [*plain, *lines])
    assert run_materialization(loaded, once=True) == 0
    found = warehouse.rows("SELECT id, n FROM t WHERE id < 1000 ORDER BY id")
    assert found == [(i, n) for i, (_, n) in GOOD.items()]
    rejected = [json.loads(r) for r in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [json.loads(r["document"])["id"] for r in rejected] == list(BAD)
    for r in rejected:
        assert BAD[json.loads(r["document"])["id"]][1] in r["reason"]
