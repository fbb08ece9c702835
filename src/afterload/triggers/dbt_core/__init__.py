"""dbt Core as a trigger kind: runs a local dbt project in a child process after commits.

The pieces, each usable alone: :mod:`.config` (the ``dbt_core_trigger`` block),
:mod:`.results` (run_results.json and the outcome of one run), :mod:`.logs` (dbt's JSON log
lines to ``logging``), :mod:`.locks` (who may write the DuckDB file, and which dbt is
running), :mod:`.run` (one dbt child process) and :mod:`.process` (the shell: modes,
starting dbt, ``check``).

The names below load on first use (PEP 562): the config model imports :mod:`.config` and the
DuckDB path :mod:`.locks`, and neither should pay for the child process machinery.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from afterload.triggers.dbt_core.config import DbtCoreTrigger, FireContext
    from afterload.triggers.dbt_core.locks import DuckDBTurns, RunSlot
    from afterload.triggers.dbt_core.process import CheckResult, DbtCoreRunner, DbtFire
    from afterload.triggers.dbt_core.results import DbtResult, RunResults
    from afterload.triggers.dbt_core.run import DbtRun

_HOMES = {
    "CheckResult": "process",
    "DbtCoreRunner": "process",
    "DbtCoreTrigger": "config",
    "DbtFire": "process",
    "DbtResult": "results",
    "DbtRun": "run",
    "DuckDBTurns": "locks",
    "FireContext": "config",
    "RunResults": "results",
    "RunSlot": "locks",
}

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


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{home}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
