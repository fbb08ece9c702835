"""dbt Core as a trigger kind: runs a local dbt project in a child process after commits.

The pieces, each usable alone: :mod:`.config` (the ``dbt_core_trigger`` block),
:mod:`.results` (run_results.json and the outcome of one run), :mod:`.logs` (dbt's JSON log
lines to ``logging``), :mod:`.locks` (who may write the DuckDB file, and which dbt is
running), :mod:`.run` (one dbt child process) and :mod:`.process` (the shell: modes,
starting dbt, ``check``).
"""

from afterload.triggers.dbt_core.config import DbtCoreTrigger, FireContext
from afterload.triggers.dbt_core.locks import DuckDBTurns, RunSlot
from afterload.triggers.dbt_core.process import CheckResult, DbtCoreRunner, DbtFire
from afterload.triggers.dbt_core.results import DbtResult, RunResults
from afterload.triggers.dbt_core.run import DbtRun

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
