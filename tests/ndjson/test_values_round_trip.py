"""The loader's first promise, as an oracle: every value lands as the document wrote it, or its
line is a reject. Generated hostile documents (integers of any size, every double, NUL and
non-ASCII text, empty strings, nesting, nulls, one property changing type from line to line)
go through a real run into a real DuckDB file and the real PostgreSQL server, in transactions
of a few lines so that columns grow and widen between commits; then each row is read back and
compared with the line it came from.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from afterload.cli.run import run_materialization
from tests.materialize_support import Warehouse, write_config, write_lines

NAMES = ["a", "ü", 'q "t']
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**15), max_value=2**15),
    st.integers(min_value=-(2**130), max_value=2**130),
    st.integers(min_value=2**53, max_value=2**63 - 1),  # BIGINT, yet a DOUBLE would round most
    st.sampled_from([2**53, 2**53 + 1, 2**63 - 1, -(2**63), 2**64, 10**30, -(10**400)]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 5e-324, 1.7976931348623157e308, 0.1, 1e16]),
    st.text(max_size=6),
    st.sampled_from(["", "\x00", "a\x00b", "é", "😀", "\u2028", "\ufeff"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
documents = st.lists(st.dictionaries(st.sampled_from(NAMES), values, max_size=3), max_size=12)


def json_columns(warehouse: Warehouse) -> dict[str, bool]:
    """Each column of ``t``: whether it holds JSON (read back as text and parsed)."""
    where = "table_name = 't'" + (
        "" if warehouse.kind == "duckdb" else " AND table_schema = current_schema()"
    )
    found = warehouse.rows(
        f"SELECT column_name, data_type FROM information_schema.columns WHERE {where}"
    )
    return {name: kind.upper() in ("JSON", "JSONB") for name, kind in found}


def same(stored: Any, written: Any) -> bool:
    """Whether a stored value is the written one: integers exactly (also in a DOUBLE column,
    which may only hold one it holds exactly), doubles exactly, text and JSON as written."""
    if written is None:
        return stored is None
    if type(written) is bool or type(stored) is bool:
        return type(written) is type(stored) and written == stored
    if type(written) is int:
        return type(stored) in (int, float) and stored == written
    if type(written) is float:
        return type(stored) is float and stored == written
    return bool(type(stored) is type(written) and stored == written)


def load(docs: list[dict[str, Any]], kind: str, per_transaction: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="afterload-values-"))
    warehouse = Warehouse(kind, work)
    try:
        lines = [
            json.dumps({"id": i, **doc}, ensure_ascii=i % 2 == 0) for i, doc in enumerate(docs)
        ]
        write_lines(work / "data/1.jsonl", lines)
        binding = {"source": "data/*.jsonl", "table": "t", "key": ["/id"], "rejects": "r.jsonl"}
        loaded = write_config(
            work, [binding], warehouse=warehouse, transaction={"max_documents": per_transaction}
        )
        out = io.StringIO()
        assert run_materialization(loaded, once=True, console=Console(file=out)) == 0, (
            out.getvalue()
        )
        rejects = work / "r.jsonl"
        entries = rejects.read_text().split("\n")[:-1] if rejects.exists() else []
        rejected = {json.loads(line)["line"] - 1 for line in entries}  # (not splitlines: U+2028)
        if len(rejected) == len(docs):
            return
        columns = json_columns(warehouse)
        names = [n for n in columns if n not in ("id", "flow_published_at")]
        select = ", ".join(
            f'"{n.replace(chr(34), chr(34) * 2)}"' + ("::VARCHAR" if columns[n] else "")
            for n in names
        )
        if kind == "postgres":
            select = select.replace("::VARCHAR", "::text")
        found = {row[0]: row[1:] for row in warehouse.rows(f"SELECT id, {select} FROM t")}
        assert set(found) == set(range(len(docs))) - rejected
        for i, row in found.items():
            doc = json.loads(lines[i])
            exact = json.loads(lines[i], parse_float=Decimal)  # JSON keeps the decimal written
            for name, stored in zip(names, row, strict=True):
                if columns[name] and stored is not None:
                    stored = json.loads(stored, parse_float=Decimal)
                    written = exact if name == "flow_document" else exact.get(name)
                    ok = stored == written
                else:
                    ok = same(stored, doc.get(name))
                assert ok, f"line {i + 1}: {name} stored {stored!r}, written {lines[i]}"
    finally:
        warehouse.drop()
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(docs=documents, per_transaction=st.integers(1, 6))
def test_every_value_lands_as_written_or_its_line_is_a_reject(
    kind: str, docs: list[dict[str, Any]], per_transaction: int
) -> None:
    load(docs, kind, per_transaction)
