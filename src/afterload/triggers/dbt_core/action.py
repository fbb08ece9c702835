"""The dbt Core trigger kind for the runner: a fire starts dbt, and only its success covers data.

:class:`DbtCoreAction` implements :class:`afterload.triggers.base.TriggerAction` around one
:class:`~.process.DbtCoreRunner`. Unlike a dbt Cloud run, which covers the data once it is
created, a dbt Core run covers the commits it was fired for only when it *succeeds*
(``confirms``): the runner follows each run to its end, and a failing model leaves the data
pending for the next interval. :class:`CommitWindow` keeps the commit times not yet covered,
which become the fire's ``flow_published_at_min``/``max`` for ``vars``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from afterload.errors import AfterloadError
from afterload.triggers.base import FireOutcome, RunEnd
from afterload.triggers.dbt_core.config import DbtCoreTrigger, FireContext
from afterload.triggers.dbt_core.locks import DuckDBTurns
from afterload.triggers.dbt_core.process import DbtCoreRunner
from afterload.triggers.dbt_core.run import DbtRun

#: What the dbt profile reads to find the DuckDB file afterload writes (and its schema).
DUCKDB_PATH_ENV = "AFTERLOAD_DUCKDB_PATH"
SOURCE_SCHEMA_ENV = "AFTERLOAD_SOURCE_SCHEMA"


class CommitWindow:
    """Publication times of the commits no successful dbt run has covered yet (thread-safe:
    commits are reported from the committer's thread, runs end on the trigger's loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._times: list[tuple[int, datetime]] = []

    def add(self, published_at: datetime) -> None:
        with self._lock:
            self._seq += 1
            self._times.append((self._seq, published_at))

    def snapshot(self) -> tuple[int, datetime | None, datetime | None]:
        """(the newest commit's number, the oldest and newest uncovered publication times)."""
        with self._lock:
            if not self._times:
                return self._seq, None, None
            times = [t for _, t in self._times]
            return self._seq, min(times), max(times)

    def covered(self, upto: int) -> None:
        """A run fired after commit ``upto`` succeeded: the commits up to it are covered."""
        with self._lock:
            self._times = [(n, t) for n, t in self._times if n > upto]


class DbtCoreAction:
    """A configured dbt Core trigger; owns its runner (and so every dbt it started)."""

    confirms = True
    """Tells the runner a started run covers data only once it succeeded."""

    def __init__(
        self,
        settings: DbtCoreTrigger,
        *,
        materialization: str = "",
        tables: Sequence[str] = (),
        turns: DuckDBTurns | None = None,
        env: dict[str, str] | None = None,
        runner: DbtCoreRunner | None = None,
    ) -> None:
        self.settings = settings
        self.runner = runner or DbtCoreRunner(settings, turns=turns, env=env)
        self.label = f"dbt {settings.command} of {settings.project_dir.name or 'project'}"
        self.interval = settings.interval.total_seconds()
        self.materialization = materialization
        self.tables = tuple(tables)
        self.window = CommitWindow()
        self._runs: dict[int, tuple[DbtRun, int]] = {}

    def __repr__(self) -> str:
        return f"DbtCoreAction({self.runner!r})"

    @property
    def mode(self) -> str:
        """The mode in force, for the run ledger."""
        return self.settings.mode

    def note_commit(self, published_at: datetime | None) -> None:
        """A commit stored data published at ``published_at`` (from any thread)."""
        if published_at is not None:
            self.window.add(published_at)

    def context(self) -> tuple[int, FireContext]:
        upto, low, high = self.window.snapshot()
        return upto, FireContext(
            materialization_name=self.materialization,
            flow_published_at_min=low,
            flow_published_at_max=high,
            collection_names=self.tables,
        )

    async def fire(self) -> FireOutcome:
        upto, context = self.context()
        fired = await self.runner.fire(context)
        if fired.run is None:
            return FireOutcome(fired.kind, fired.message)
        self._runs[fired.run.pid] = (fired.run, upto)
        return FireOutcome("started", fired.message, run_id=fired.run.pid, cancelled=fired.replaced)

    async def check(self) -> str:
        """The project and its profile exist and parse as YAML (``afterload check`` runs
        ``dbt parse`` as well: it takes seconds, too long for every start)."""
        problem = self.runner.preflight()
        if problem:
            raise AfterloadError(problem)
        return f"dbt project {self.settings.project_dir} found"

    async def wait(self, outcome: FireOutcome, timeout: float) -> RunEnd:
        assert outcome.run_id is not None
        run, upto = self._runs[outcome.run_id]
        limit = None if timeout == float("inf") else timeout
        try:
            result = await asyncio.wait_for(run.result(), limit)
        except TimeoutError:
            return RunEnd("timeout", f"dbt (pid {run.pid}) was still running after {timeout:.0f}s")
        self._runs.pop(outcome.run_id, None)
        if result.outcome == "success":
            self.window.covered(upto)
        return RunEnd(result.outcome, result.message)

    async def aclose(self) -> None:
        """Interrupt every dbt still running (SIGINT, then SIGTERM) and reap it."""
        await self.runner.stop()


def dbt_env(duckdb_file: Path | None, schema: str | None) -> dict[str, str]:
    """What the dbt child gets so its profile can find the data afterload wrote."""
    env: dict[str, str] = {}
    if duckdb_file is not None:
        env[DUCKDB_PATH_ENV] = str(duckdb_file.resolve())
    if schema is not None:
        env[SOURCE_SCHEMA_ENV] = schema
    return env
