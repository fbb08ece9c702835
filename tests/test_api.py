"""The Python API: the README's example runs as written, prints nothing of its own, and every
error is an AfterloadError; a driver with its own transactions commits through Materializer."""

from __future__ import annotations

import contextlib
import io
import logging
import re
from pathlib import Path

import pytest

import afterload
from afterload.core.checkpoint import Checkpoint
from afterload.core.schema import TableShape
from afterload.core.transaction import BindingChanges, Transaction
from tests.materialize_support import ROOT, rows, write_lines

SHOP = """\
name: shop
destination:
  duckdb: {path: warehouse.duckdb}
bindings:
  - source: data/orders/*.jsonl
    table: orders
    key: [/id]
    hard_delete: true
"""


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Use it from Python", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_the_readme_example_runs_and_prints_only_what_it_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shop.yaml").write_text(SHOP)
    write_lines(
        tmp_path / "data/orders/1.jsonl",
        [{"id": 1, "amount": 12.5}, {"id": 2, "amount": 7}, {"id": 1, "_meta": {"op": "d"}}],
    )
    monkeypatch.chdir(tmp_path)
    # A fresh host program: no logging configured (earlier tests may have set some up).
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        exec(compile(readme_example(), "README.md", "exec"), {})
    assert out.getvalue().splitlines() == ["3 2 1 ()", "typo.yaml: no such config file"]
    assert err.getvalue() == ""
    assert rows(tmp_path / "warehouse.duckdb", "SELECT id, amount FROM orders") == [(2, 7.0)]


def test_errors_are_afterload_errors_with_the_clis_sentence(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("dbt_job_trigger:\n  access_url: https://x.us1.dbt.com\n")
    with pytest.raises(afterload.ConfigError) as info:
        afterload.load_config(bad)
    assert isinstance(info.value, afterload.AfterloadError)
    assert len(info.value.problems) == 3 and str(info.value) == "\n".join(info.value.problems)
    cfg_path = tmp_path / "shop.yaml"
    cfg_path.write_text(SHOP)
    write_lines(tmp_path / "data/orders/1.jsonl", ['{"amount": 1}'])
    with pytest.raises(afterload.AfterloadError, match=r"^orders: data/orders/1.jsonl:1: "):
        afterload.materialize(afterload.load_config(cfg_path), once=True)


def test_logging_not_a_console(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "shop.yaml").write_text(SHOP)
    write_lines(tmp_path / "data/orders/1.jsonl", [{"id": 1}])
    caplog.set_level(logging.INFO, logger="afterload")
    report = afterload.materialize(afterload.load_config(tmp_path / "shop.yaml"))
    assert report.transactions == 1 and report.documents == 1 and report.runs == ()
    assert any("committed transaction 1" in r.getMessage() for r in caplog.records)


def test_a_driver_with_its_own_transactions_resumes_from_its_own_position(
    tmp_path: Path,
) -> None:
    (tmp_path / "shop.yaml").write_text(SHOP)
    cfg = afterload.load_config(tmp_path / "shop.yaml")
    heard: list[int] = []
    core = afterload.Materializer(
        afterload.open_destination(cfg),
        "from-python",
        listeners=[lambda c: heard.append(c.documents)],
    )
    assert core.open().checkpoint == Checkpoint()
    shape = TableShape("orders", ["/id"], delta=False)
    txn = Transaction()
    changes = txn.changes["orders"] = BindingChanges(delta=False, hard_delete=False)
    for raw in (b'{"id": 1, "v": "a"}', b'{"id": 1, "v": "b"}', b'{"id": 2, "v": "c"}'):
        doc = {"id": 1} if b'"id": 1' in raw else {"id": 2}
        shape.observe({**doc, "v": "x"})
        changes.add(doc["id"], raw, False)
    core.commit(txn, Checkpoint(driver={"offset": 3, "token": "opaque"}), {"orders": shape})
    core.close()
    core.destination.close()
    assert heard == [3] and core.rows == 2

    again = afterload.Materializer(afterload.open_destination(cfg), "from-python")
    assert again.open().checkpoint.driver == {"offset": 3, "token": "opaque"}
    again.destination.close()
    assert rows(tmp_path / "warehouse.duckdb", "SELECT id, v FROM orders ORDER BY id") == [
        (1, "b"),
        (2, "c"),
    ]


def test_the_api_names_what_it_exports() -> None:
    for name in afterload.__all__:
        assert getattr(afterload, name) is not None
