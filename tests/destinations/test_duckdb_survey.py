"""DuckDB reads usual lines itself; the survey must send every unusual one to the exact path.

Two kinds of test: every known trap line (a token DuckDB's reader takes and the exact path
refuses, a value whose acceptance depends on more than its kind, a repeated name) makes its
transaction take the exact path; and a property test runs the same generated input through
both paths into real DuckDB files and compares tables, rejects and errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from afterload.core.documents import DocumentError
from afterload.core.jsonschema import shape_from_json_schema
from afterload.core.schema import ColumnType, TableShape
from afterload.destinations.duckdb.destination import DuckDBDestination
from afterload.destinations.duckdb.survey import Surveyor
from afterload.ndjson.driver import NdjsonDriver
from tests.materialize_support import rows, write_config

SCHEMA = {
    "properties": {
        "id": {"type": "integer"},
        "ts": {"type": "string", "format": "date-time"},
        "d": {"type": "string", "format": "date"},
        "x": {"type": "number"},
        "n": {"type": "integer"},
    }
}
TEMPLATE = '{"id":%d,"ts":"2025-01-0%dT10:00:00Z","d":"2025-02-0%d","x":%s,"n":3,"s":"a","o":%s}'


def clean(i: int, *, x: str = "", o: str = '{"k":[1]}') -> bytes:
    """A usual line; half of them hold an integer in the DOUBLE column x."""
    return (TEMPLATE % (i, i % 9 + 1, i % 9 + 1, x or ("1.5" if i % 2 else str(i)), o)).encode()


CLEAN = [clean(i) for i in range(50)]

# Each trap is shaped like the clean lines (the same names, the same kinds of value) wherever
# it can be, so that only the check meant for it can tell it apart from them.
TRAPS = {
    "NaN": clean(1, x="NaN"),
    "negative infinity": clean(1, x="-Infinity"),
    "inf in an array": clean(1, o='{"k":[1, inf]}'),
    "nan nested": clean(1, o='{"k":nan}'),
    "trailing comma in an object": clean(1, o='{"k":[1],}'),
    "trailing comma in an array": clean(1, o='{"k":[1,2, ]}'),
    "an exponent past a double": clean(1, x="1e400"),
    "a three-digit negative exponent": clean(1, x="1.5E-999"),
    "a non-zero number below a double": clean(1, x="1.0e-400"),
    "a non-zero number below a double, nested": clean(1, o='{"k":[1, -1e-400]}'),
    "a fraction of 400 zeros": clean(1, x="0." + "0" * 400 + "1"),
    "a fraction of 400 zeros, nested": clean(1, o='{"k":[0.' + "0" * 400 + "1]}"),
    "a subnormal (taken, yet read exactly)": clean(1, x="1e-320"),
    "16 digits into a DOUBLE": clean(2, x="9007199254740993"),
    "2^63 into a declared integer": clean(1).replace(b'"n":3', b'"n":9223372036854775808'),
    "2^64": clean(1).replace(b'"n":3', b'"n":18446744073709551616'),
    "below -2^63": clean(1).replace(b'"n":3', b'"n":-9223372036854775809'),
    "a long integer nested": clean(1, o='{"k":[' + "9" * 5000 + "]}"),
    "nesting past the exact path's limit": clean(1, o='{"k":' + "[" * 1100 + "]" * 1100 + "}"),
    "a byte-order mark": b"\xef\xbb\xbf" + clean(1),
    "a repeated name": clean(1).replace(b'"s":"a"', b'"s":"a","s":"b"'),
    "a repeated name through an escape": clean(1).replace(b'"s":"a"', b'"\\u0073":"a","s":"b"'),
    "a repeated key": clean(1).replace(b'"s":"a"', b'"id":2'),
    "a whitespace-only line": b"   ",
    "an array": b"[1,2]",
    "a string": b'"id"',
    "a missing key": clean(1).replace(b'"id":1,', b""),
    "a null key": clean(1).replace(b'"id":1', b'"id":null'),
    "a float key": clean(1).replace(b'"id":1', b'"id":1.0'),
    "a string in an integer column": clean(1).replace(b'"n":3', b'"n":"3"'),
    "a fraction for a declared integer": clean(1).replace(b'"n":3', b'"n":3.5'),
    "an integral float, then a fraction, for a declared integer": clean(1).replace(
        b'"n":3', b'"n":3.0'
    )
    + b"\n"
    + clean(3).replace(b'"n":3', b'"n":3.5'),
    "a date-time without a zone": clean(1).replace(b"10:00:00Z", b"10:00:00"),
    "a date-time that does not exist": clean(1).replace(b"2025-01-02T", b"2025-02-30T"),
    "a date-time past midnight": clean(1).replace(b"T10:00", b"T24:00"),
    "a date-time that is a number": clean(1).replace(b'"2025-01-02T10:00:00Z"', b"20250101"),
    "a date that does not exist": clean(1).replace(b"2025-02-02", b"2025-02-29"),
    "a date with a time": clean(1).replace(b'"2025-02-02"', b'"2025-02-02T00:00:00Z"'),
    "invalid UTF-8": clean(1).replace(b'"s":"a"', b'"s":"\xff"'),
    "a lone surrogate": clean(1).replace(b'"s":"a"', b'"s":"\\ud800"'),
    "two objects on a line": clean(1) + clean(2),
    "not JSON": b"id=1",
    "a name that differs only in case": clean(1).replace(b'"s":"a"', b'"S":"a"'),
    "a property named like flow_document": clean(1).replace(b'"s":"a"', b'"flow_document":1'),
    "a new property whose type changes": clean(1).replace(b'"s":"a"', b'"z":1')
    + b"\n"
    + clean(2).replace(b'"s":"a"', b'"z":"x"'),
}


def schema_shape() -> TableShape:
    shape = shape_from_json_schema("t", ["/id"], SCHEMA, delta=False)
    shape.add("s", ColumnType.VARCHAR)
    shape.add("o", ColumnType.JSON)
    return shape


@pytest.fixture
def surveyor() -> Any:
    s = Surveyor()
    yield s
    s.close()


def test_clean_lines_are_read_by_duckdb(surveyor: Surveyor) -> None:
    shape = schema_shape()
    staged = surveyor.survey(shape, ["/id"], [b"\n".join(CLEAN)], hard_delete=False)
    assert staged is not None and staged.documents == len(CLEAN)
    assert staged.path.read_bytes() == b"\n".join(CLEAN) + b"\n"


@pytest.mark.parametrize("at", [0, 10])
@pytest.mark.parametrize("trap", sorted(TRAPS))
def test_a_trap_line_sends_its_transaction_to_the_exact_path(
    surveyor: Surveyor, trap: str, at: int
) -> None:
    shape = schema_shape()
    before = [(c.name, c.type) for c in shape.ordered()]
    lines = [*CLEAN[:at], *TRAPS[trap].split(b"\n"), *CLEAN[at:]]
    assert surveyor.survey(shape, ["/id"], [b"\n".join(lines)], hard_delete=False) is None
    assert [(c.name, c.type) for c in shape.ordered()] == before  # the shape is left alone


@pytest.mark.parametrize("blank", [0, 3, 20])
def test_empty_lines_are_skipped_and_not_counted(surveyor: Surveyor, blank: int) -> None:
    lines = [*CLEAN[:blank], b"", b"", *CLEAN[blank:], b""]
    staged = surveyor.survey(schema_shape(), ["/id"], [b"\n".join(lines)], hard_delete=False)
    assert staged is not None and staged.documents == len(CLEAN)


def test_a_delete_marker_takes_the_exact_path_only_for_hard_deletes(surveyor: Surveyor) -> None:
    lines = [*CLEAN[:5], b'{"id":3,"_meta":{"op":"d"}}']
    assert surveyor.survey(schema_shape(), ["/id"], [b"\n".join(lines)], hard_delete=True) is None
    assert (
        surveyor.survey(schema_shape(), ["/id"], [b"\n".join(lines)], hard_delete=False) is not None
    )


def test_new_properties_become_columns_in_the_order_they_first_appear(
    surveyor: Surveyor,
) -> None:
    shape = TableShape("t", ["/id"], delta=False)
    lines = [b'{"id":1,"b":1}', b'{"id":2,"c":"x","a":true}', b'{"a":false,"id":3,"b":2.5}']
    assert surveyor.survey(shape, ["/id"], [b"\n".join(lines)], hard_delete=False) is not None
    assert [(c.name, c.type.value) for c in shape.ordered()] == [
        ("id", "BIGINT"),
        ("b", "DOUBLE"),
        ("c", "VARCHAR"),
        ("a", "BOOLEAN"),
    ]


# -- the two paths side by side ------------------------------------------------------------

NAMES = ["n", "x", "s", "ts", "o", "ünï", "a b", "x/y", "~t", "_meta", "rowid", "r"]
hostile_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=4
) | st.sampled_from(["", "\x00", '":', "\\", "é" * 3, "NaN", "a,]", "1e400", " : "])
moderate = st.one_of(st.integers(-5, 5), st.integers(-(10**12), 10**12), st.floats(-1e9, 1e9))
extreme = st.one_of(st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False))
numbers = st.one_of(moderate, moderate, moderate, extreme)
scalars = st.one_of(st.none(), st.booleans(), numbers, hostile_text)
nested = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=6,
)
KINDS = {
    "int": st.integers(-(10**14), 10**14) | st.integers(-(2**53), 2**53),
    "number": numbers,
    "text": hostile_text,
    "bool": st.booleans(),
    "date-time": st.sampled_from(["2025-01-01T00:00:00Z", "2024-02-29T23:59:59.5+01:00"]),
    "nested": st.dictionaries(hostile_text, nested, max_size=3) | st.lists(nested, max_size=3),
    "anything": st.one_of(scalars, nested),
}
KEYS = {"int": st.integers(0, 12), "text": st.sampled_from(["k", "é", "", "\x00", "K"])}
TRAP_LINES = [t for t in TRAPS.values() if b"\n" not in t and len(t) < 2000]


@st.composite
def inputs(draw: st.DrawFn) -> list[bytes]:
    """Lines of a few templates, each property of one kind (as real streams are), sometimes
    null or absent, with a trap or a value of another kind now and then."""
    key = draw(st.sampled_from(sorted(KEYS)))
    kinds = {name: draw(st.sampled_from(sorted(KINDS))) for name in NAMES}
    templates = draw(
        st.lists(st.lists(st.sampled_from(NAMES), unique=True), min_size=1, max_size=3)
    )
    lines = []
    for _ in range(draw(st.integers(1, 40))):
        odd = draw(st.integers(0, 30))
        if odd == 0:
            lines.append(draw(st.sampled_from(TRAP_LINES)))
            continue
        if odd == 2:
            lines.append(b"")  # an empty line: skipped by both paths, not counted
            continue
        doc: dict[str, Any] = {"id": draw(KEYS[key])}
        for name in draw(st.sampled_from(templates)):
            if draw(st.integers(0, 5)) == 0:
                continue  # absent
            kind = "anything" if odd == 1 else kinds[name]
            doc[name] = None if draw(st.integers(0, 7)) == 0 else draw(KINDS[kind])
        ascii_only = draw(st.booleans())
        lines.append(json.dumps(doc, ensure_ascii=ascii_only, separators=(",", ":")).encode())
    return lines


def materialize(
    tmp: Path, lines: list[bytes], *, survey: bool, rejects: bool, key: str = "/id"
) -> Any:
    tmp.mkdir()
    (tmp / "data").mkdir()
    (tmp / "data" / "1.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    binding: dict[str, Any] = {"source": "data/*.jsonl", "table": "t", "key": [key]}
    if rejects:
        binding["rejects"] = "rejects.jsonl"
    loaded = write_config(tmp, [binding], transaction={"max_documents": 7})
    destination = DuckDBDestination(tmp / "w.duckdb", survey=survey)
    driver = NdjsonDriver.for_config(loaded, destination)
    error = None
    try:
        driver.open()
        driver.run_once()
    except DocumentError as exc:
        error = str(exc)
    finally:
        driver.close()
        destination.close()
    db = tmp / "w.duckdb"
    table = rows(
        db,
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 't' ORDER BY ordinal_position",
    )
    content = []
    if table:
        content = rows(db, "SELECT * EXCLUDE (flow_published_at) FROM t ORDER BY ALL")
    rejected = (tmp / "rejects.jsonl").read_bytes() if rejects else b""
    return table, content, rejected, error


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs(), st.booleans())
def test_both_paths_give_the_same_table_rejects_and_errors(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes], rejects: bool
) -> None:
    base = tmp_path_factory.mktemp("paths")
    exact = materialize(base / "exact", lines, survey=False, rejects=rejects)
    surveyed = materialize(base / "surveyed", lines, survey=True, rejects=rejects)
    assert surveyed == exact


def test_the_generated_input_does_reach_duckdb_unparsed(tmp_path: Path) -> None:
    """Usual lines are never parsed in Python, and the last line of a key wins."""
    lines = [b'{"id":%d,"s":"%d"}' % (i % 5, i) for i in range(30)]
    calls: list[int] = []
    exact = NdjsonDriver._parse

    def counted(self: NdjsonDriver, *args: Any) -> None:
        calls.append(1)
        exact(self, *args)

    NdjsonDriver._parse = counted  # type: ignore[method-assign,assignment]
    try:
        _, content, _, _ = materialize(tmp_path / "a", lines, survey=True, rejects=True)
    finally:
        NdjsonDriver._parse = exact  # type: ignore[method-assign]
    assert calls == []
    assert content == [
        (i, str(25 + i), json.dumps({"id": i, "s": str(25 + i)}).replace(" ", "")) for i in range(5)
    ]


@pytest.mark.parametrize(
    ("key", "other"),
    [("id", "rowid"), ("id", "RowID"), ("r", "v"), ("_r", "r"), ("id", "r")],
)
def test_columns_named_like_the_merges_own_names_keep_one_row_per_key(
    tmp_path: Path, key: str, other: str
) -> None:
    """A column named ``rowid`` hides DuckDB's row numbers, and one named ``r`` met the
    merge's alias: keys were duplicated and older rows kept. Keys repeat within and across
    transactions (7 documents each), with ``other`` falling as the lines go on."""
    lines = [
        json.dumps({key: i % 4, other: 100 - i, "v2": f"line {i}"}).encode() for i in range(30)
    ]
    expected = {}
    for i in range(30):
        expected[i % 4] = (100 - i, f"line {i}")
    for survey in (False, True):
        _, content, _, error = materialize(
            tmp_path / f"s{survey}", lines, survey=survey, rejects=False, key=f"/{key}"
        )
        assert error is None
        got = {row[0]: row[1:3] for row in content}
        assert len(content) == 4 and got == expected, (survey, content)
