"""Two configs (two materializations) writing one PostgreSQL table at once.

Before, both could make the same change to the table: one failed with "column … already
exists", or, creating it, with PostgreSQL's own "duplicate key value violates unique
constraint pg_type_typname_nsp_index". The table's changes now take a lock of their own.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from afterload.cli.run import run_materialization
from tests.materialize_support import Warehouse, write_config, write_lines

pytestmark = pytest.mark.slow


def test_two_materializations_change_one_table_at_once(tmp_path: Path) -> None:
    warehouse = Warehouse("postgres", tmp_path)
    try:
        configs = []
        for side in ("a", "b"):
            folder = tmp_path / side
            folder.mkdir()
            configs.append(
                write_config(
                    folder,
                    [{"source": "in.jsonl", "table": "shared", "key": ["/id"]}],
                    warehouse=warehouse,
                    name=f"shared_{side}",
                )
            )
        for round_ in range(4):  # each round: both add the same new column at the same time
            barrier = threading.Barrier(2)
            codes: list[int] = []

            def run(
                i: int,
                round_: int = round_,
                barrier: threading.Barrier = barrier,
                codes: list[int] = codes,
            ) -> None:
                side = "ab"[i]
                docs = [{"id": f"{side}{round_}-{n}", f"new{round_}": n} for n in range(50)]
                write_lines(tmp_path / side / "in.jsonl", docs, append=True)
                barrier.wait()
                codes.append(run_materialization(configs[i], once=True))

            threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert codes == [0, 0], f"round {round_}"
        assert warehouse.rows("SELECT count(*) FROM shared") == [(400,)]
    finally:
        warehouse.drop()
