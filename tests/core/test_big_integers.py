"""No value changed silently, no two keys merged: integers of any size, both destinations.

Integers past 64 bits go to HUGEINT (DuckDB) or NUMERIC (PostgreSQL) exactly; past what the
destination can hold they are bad lines; a float is never a key.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from afterload.cli.run import run_materialization
from afterload.config import LoadedConfig
from afterload.core.values import INT128_MAX, INT128_MIN
from tests.materialize_support import Warehouse, write_config, write_lines

BINDING = {
    "source": "data/*.jsonl",
    "table": "t",
    "key": ["/id"],
    "rejects": "rejects.jsonl",
}


def run_once(loaded: LoadedConfig) -> str:
    out = io.StringIO()
    code = run_materialization(loaded, once=True, console=Console(file=out, width=200))
    assert code == 0, out.getvalue()
    return out.getvalue()


def rejected(tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / "rejects.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_keys_past_64_bits_stay_distinct(tmp_path: Path, warehouse: Warehouse) -> None:
    loaded = write_config(tmp_path, [BINDING], warehouse=warehouse)
    write_lines(
        tmp_path / "data/1.jsonl",
        ['{"id":123456789012345678901234567890}', '{"id":123456789012345678901234567891}'],
    )
    run_once(loaded)
    assert warehouse.rows("SELECT id FROM t ORDER BY id") == [
        (123456789012345678901234567890,),
        (123456789012345678901234567891,),
    ]
    docs = [json.loads(d) for (d,) in warehouse.rows("SELECT flow_document FROM t ORDER BY id")]
    assert docs == [{"id": 123456789012345678901234567890}, {"id": 123456789012345678901234567891}]
    assert rejected(tmp_path) == []


def test_unsigned_64_bit_values_are_held_exactly(tmp_path: Path, warehouse: Warehouse) -> None:
    loaded = write_config(tmp_path, [BINDING], warehouse=warehouse)
    write_lines(tmp_path / "data/1.jsonl", ['{"id":1,"n":18446744073709551615}'])
    run_once(loaded)
    assert warehouse.rows("SELECT n FROM t") == [(18446744073709551615,)]


def test_a_bigint_column_widens_when_a_later_run_brings_a_big_integer(
    tmp_path: Path, warehouse: Warehouse
) -> None:
    loaded = write_config(tmp_path, [BINDING], warehouse=warehouse)
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1, "n": 5}, {"id": 2, "n": 6}])
    run_once(loaded)
    # Both the key column (part of the primary key) and a value column grow past 64 bits.
    write_lines(tmp_path / "data/2.jsonl", [{"id": 2**70, "n": -(2**90)}, {"id": 1, "n": 7}])
    run_once(loaded)
    assert warehouse.rows("SELECT id, n FROM t ORDER BY id") == [
        (1, 7),
        (2, 6),
        (2**70, -(2**90)),
    ]
    # The key still holds: an update to the big key replaces its row.
    write_lines(tmp_path / "data/3.jsonl", [{"id": 2**70, "n": 1}])
    run_once(loaded)
    assert warehouse.rows("SELECT n FROM t WHERE id > 2") == [(1,)]
    assert rejected(tmp_path) == []


def test_a_float_key_is_a_bad_line(tmp_path: Path, warehouse: Warehouse) -> None:
    loaded = write_config(tmp_path, [BINDING], warehouse=warehouse)
    write_lines(tmp_path / "data/1.jsonl", ['{"id":10}', '{"id":10.0}', '{"id":1e3}'])
    run_once(loaded)
    assert warehouse.rows("SELECT id FROM t") == [(10,)]
    reasons = [r["reason"] for r in rejected(tmp_path)]
    assert len(reasons) == 2
    assert all("key /id must be an integer, string or boolean" in str(r) for r in reasons)


def test_no_double_column_rounds_an_integer(tmp_path: Path, warehouse: Warehouse) -> None:
    loaded = write_config(tmp_path, [BINDING], warehouse=warehouse)
    write_lines(
        tmp_path / "data/1.jsonl",
        [
            '{"id":1,"x":0.5}',
            '{"id":2,"x":9007199254740993}',
            '{"id":3,"x":9007199254740992}',
            '{"id":4,"x":1' + "0" * 400 + "}",  # past every DOUBLE: once a traceback
        ],
    )
    run_once(loaded)
    assert warehouse.rows("SELECT id, x FROM t ORDER BY id") == [(1, 0.5), (3, 2.0**53)]
    reasons = [str(r["reason"]) for r in rejected(tmp_path)]
    assert reasons == [
        "/x 9007199254740993 cannot be held exactly by its column DOUBLE",
        "/x 1000…0000 (401 digits) cannot be held exactly by its column DOUBLE",
    ]


@pytest.mark.parametrize("where", ["same transaction", "later transaction"])
def test_an_integer_column_holding_what_a_double_rounds_never_widens(
    tmp_path: Path, warehouse: Warehouse, where: str
) -> None:
    """A fraction would widen the column to DOUBLE and round 2^53 + 1 already taken: the
    fraction's line is the bad one, whether the integer came in its transaction or before."""
    loaded = write_config(
        tmp_path, [BINDING], warehouse=warehouse, transaction={"max_documents": 2}
    )
    big = [{"id": i, "x": 9007199254740993 + i} for i in range(3)]  # the middle one is exact
    lines = [{"id": 10, "x": 7}, big[1], big[0], {"id": 11, "x": 1.5}, big[2]]
    if where == "later transaction":
        lines = [{"id": 10, "x": 7}, big[1], big[0], {"id": 12, "x": 8}, {"id": 11, "x": 1.5}]
    write_lines(tmp_path / "data/1.jsonl", lines)
    run_once(loaded)
    found = dict(warehouse.rows("SELECT id, x FROM t"))
    assert found[0] == 9007199254740993 and found[1] == 9007199254740994
    assert 11 not in found
    reasons = [str(r["reason"]) for r in rejected(tmp_path)]
    assert reasons == [
        "/x is a number, but its column holds 9007199254740993, which a DOUBLE would round, "
        "so the column cannot widen to DOUBLE"
    ]


def test_a_column_stored_by_an_earlier_run_is_not_widened_over_its_values(
    tmp_path: Path, warehouse: Warehouse
) -> None:
    """Another process stored the integer: the destination finds it, the commit is refused
    with one sentence, and what was committed stands."""
    loaded = write_config(tmp_path, [BINDING], warehouse=warehouse)
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1, "x": 9007199254740993}, {"id": 2, "x": 4}])
    run_once(loaded)
    write_lines(tmp_path / "data/2.jsonl", [{"id": 3, "x": 1.5}])
    out = io.StringIO()
    assert run_materialization(loaded, once=True, console=Console(file=out, width=300)) == 1
    assert (
        "column x of table t met a number with a fraction but cannot widen from BIGINT to "
        "DOUBLE: it holds 9007199254740993, which a DOUBLE would round" in out.getvalue()
    )
    assert warehouse.rows("SELECT id, x FROM t ORDER BY id") == [(1, 9007199254740993), (2, 4)]


def test_a_big_integer_a_double_holds_exactly_lets_the_column_widen(
    tmp_path: Path, warehouse: Warehouse
) -> None:
    loaded = write_config(tmp_path, [BINDING], warehouse=warehouse)
    write_lines(tmp_path / "data/1.jsonl", [{"id": 1, "x": 2**60}, {"id": 2, "x": -(2**63)}])
    run_once(loaded)
    write_lines(tmp_path / "data/2.jsonl", [{"id": 3, "x": 1.5}])
    run_once(loaded)
    assert warehouse.rows("SELECT id, x FROM t ORDER BY id") == [
        (1, 2.0**60),
        (2, -(2.0**63)),
        (3, 1.5),
    ]


def test_past_the_widest_integer_is_a_bad_line_where_nothing_holds_it(
    tmp_path: Path, warehouse: Warehouse
) -> None:
    loaded = write_config(tmp_path, [BINDING], warehouse=warehouse)
    huge = 10**40  # past DuckDB's HUGEINT; PostgreSQL's NUMERIC holds it
    write_lines(tmp_path / "data/1.jsonl", [f'{{"id":1,"n":{huge}}}', '{"id":2,"n":1}'])
    run_once(loaded)
    if warehouse.kind == "duckdb":
        assert warehouse.rows("SELECT id, n FROM t") == [(2, 1)]
        assert "past the range of every integer column" in str(rejected(tmp_path)[0]["reason"])
    else:
        assert warehouse.rows("SELECT id, n FROM t ORDER BY id") == [(1, huge), (2, 1)]
        assert rejected(tmp_path) == []


def test_an_integer_too_long_to_read_is_a_bad_line(tmp_path: Path, warehouse: Warehouse) -> None:
    loaded = write_config(tmp_path, [BINDING], warehouse=warehouse)
    write_lines(
        tmp_path / "data/1.jsonl",
        ['{"id":1,"n":' + "9" * 5000 + "}", '{"id":2,"n":' + "7" * 400 + "}"],
    )
    run_once(loaded)
    assert "more than 4300 digits" in str(rejected(tmp_path)[0]["reason"])
    # 400 digits: past every double (orjson refuses it) yet exact JSON; NUMERIC holds it.
    if warehouse.kind == "postgres":
        assert warehouse.rows("SELECT id, n FROM t") == [(2, int("7" * 400))]
    else:
        assert len(rejected(tmp_path)) == 2
        assert "7777…7777 (400 digits) is past the range" in str(rejected(tmp_path)[1]["reason"])


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    keys=st.lists(
        st.one_of(
            st.integers(),
            st.integers(min_value=-(10**45), max_value=10**45),
            st.sampled_from([2**63 - 1, 2**63, -(2**63) - 1, 2**64, INT128_MAX, INT128_MAX + 1]),
        ),
        min_size=1,
        max_size=12,
        unique=True,
    ),
    data=st.data(),
)
def test_any_integer_round_trips_exactly_or_is_rejected(
    tmp_path_factory: pytest.TempPathFactory,
    warehouse_kind: str,
    keys: list[int],
    data: st.DataObject,
) -> None:
    tmp_path = tmp_path_factory.mktemp("ints")
    warehouse = Warehouse(warehouse_kind, tmp_path)
    try:
        values = [data.draw(st.integers(min_value=-(10**50), max_value=10**50)) for _ in keys]
        loaded = write_config(tmp_path, [BINDING], warehouse=warehouse)
        write_lines(
            tmp_path / "data/1.jsonl",
            [f'{{"id":{k},"n":{v}}}' for k, v in zip(keys, values, strict=True)],
        )
        run_once(loaded)

        def fits(n: int) -> bool:
            return warehouse_kind == "postgres" or INT128_MIN <= n <= INT128_MAX

        expected = sorted((k, v) for k, v in zip(keys, values, strict=True) if fits(k) and fits(v))
        stored = warehouse.rows("SELECT id, n FROM t") if expected else []
        assert sorted(stored) == expected
        assert len(rejected(tmp_path)) == len(keys) - len(expected)
    finally:
        warehouse.drop()


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)
