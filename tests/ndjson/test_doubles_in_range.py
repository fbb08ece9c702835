"""A number a DOUBLE cannot hold is a bad line, on both destinations, whether its column is
inferred or declared ``number``, and wherever it is in the line.

Before, ``1.0e-400`` (non-zero, yet below the smallest double) was stored as ``0.0`` and
``-1e-400`` as ``-0.0`` without a word, while ``1e400`` was a bad line "not valid JSON".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from afterload.cli.run import run_materialization
from afterload.core.documents import DocumentParser
from afterload.core.schema import LineProblem, TableShape
from tests.materialize_support import Warehouse, write_config, write_lines

TINY = "0." + "0" * 400 + "1"
GOOD = {1: ("1e-320", 1e-320), 2: ("0.0e-400", 0.0), 3: ("-4.9E-324", -5e-324), 4: ("2.5", 2.5)}
BAD = {
    10: (
        "1.0e-400",
        '"v": 1.0e-400',
        "1.0e-400 is too small for a DOUBLE (it would be stored as 0)",
    ),
    11: ("-1e-400", '"v": -1e-400', "-1e-400 is too small for a DOUBLE"),
    12: (TINY, f'"v": {TINY}', "is too small for a DOUBLE"),
    13: ("1e400", '"v": 1e400', "1e400 is too large for a DOUBLE"),
    14: ("nested", '"o": {"k": [1, 1e-400]}', "1e-400 is too small for a DOUBLE"),
    15: ("nested long", f'"o": [{TINY}]', "is too small for a DOUBLE"),
}


@pytest.mark.parametrize("text", [text for _, text, _ in BAD.values()])
def test_the_exact_path_refuses_a_double_out_of_range(text: str) -> None:
    parser = DocumentParser(TableShape("t", ["/id"], delta=False), ["/id"], hard_delete=False)
    with pytest.raises(LineProblem, match=r"too (small|large) for a DOUBLE"):
        parser.parse(f'{{"id": 1, {text}}}'.encode())


@pytest.mark.parametrize("declared", [False, True], ids=["inferred", "declared"])
@pytest.mark.parametrize("many", [False, True], ids=["exact path", "surveyed"])
def test_end_to_end(tmp_path: Path, warehouse: Warehouse, declared: bool, many: bool) -> None:
    block = {"source": "t.jsonl", "table": "t", "key": ["/id"], "rejects": "rejects.jsonl"}
    if declared:
        schema = {"properties": {"id": {"type": "integer"}, "v": {"type": "number"}}}
        (tmp_path / "t.schema.json").write_text(json.dumps(schema))
        block["schema"] = "t.schema.json"
    loaded = write_config(tmp_path, [block], warehouse=warehouse)
    # Plain lines first (enough for a survey and for the fast loop), then the numbers under test.
    plain = [
        f'{{"id": {1000 + i}, "v": 1.5, "o": {{"k": [1]}}}}' for i in range(500 if many else 1)
    ]
    good = [f'{{"id": {i}, "v": {text}, "o": {{"k": [1]}}}}' for i, (text, _) in GOOD.items()]
    bad = [f'{{"id": {i}, {text}}}' for i, (_, text, _) in BAD.items()]
    write_lines(tmp_path / "t.jsonl", [*plain, *good, *bad, *plain[:1]])
    assert run_materialization(loaded, once=True) == 0
    found = warehouse.rows("SELECT id, v FROM t WHERE id < 1000 ORDER BY id")
    assert found == [(i, v) for i, (_, v) in GOOD.items()]
    rejected = [json.loads(r) for r in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [json.loads(r["document"])["id"] for r in rejected] == list(BAD)
    for r in rejected:
        assert BAD[json.loads(r["document"])["id"]][2] in r["reason"], r["reason"]
