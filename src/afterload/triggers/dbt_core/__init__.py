"""dbt Core as a trigger kind: runs a local dbt project in a child process after commits.

The pieces, each usable alone: :mod:`.config` (the ``dbt_core_trigger`` block), :mod:`.results`
(run_results.json and the outcome of one run), :mod:`.logs` (dbt's JSON log lines to
``logging``), :mod:`.locks` (who may write the DuckDB file, and which dbt is running), and
:mod:`.process` (the shell that starts, interrupts and reaps dbt).
"""

from afterload.triggers.dbt_core.config import DbtCoreTrigger, FireContext
from afterload.triggers.dbt_core.locks import DuckDBTurns, RunSlot
from afterload.triggers.dbt_core.process import CheckResult, DbtCoreRunner, DbtFire, DbtRun
from afterload.triggers.dbt_core.results import DbtResult, RunResults

__all__ = [
    "CheckResult",
    "DbtCoreRunner",
    "DbtCoreTrigger",
    "DbtFire",
    "DbtResult",
    "DbtRun",
    "DuckDBTurns",
    "FireContext",
    "RunResults",
    "RunSlot",
]
