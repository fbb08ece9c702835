"""The dbt Cloud trigger kind: apply the mode to the job's active runs, start one, wait for it.

One :class:`DbtCloudAction` per run holds the run's one client, shared by the access check at
start, every fire, and ``--wait``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from afterload.clock import Clock
from afterload.durations import format_duration
from afterload.triggers.base import FireOutcome, RunEnd
from afterload.triggers.commits import CommitFacts
from afterload.triggers.dbt_cloud.client import DbtCloudClient
from afterload.triggers.dbt_cloud.config import DbtJobTrigger
from afterload.triggers.dbt_cloud.errors import DbtCloudError
from afterload.triggers.dbt_cloud.models import Job, Run, RunStatus
from afterload.triggers.dbt_cloud.policy import RetryPolicy

_RESULTS = {RunStatus.SUCCESS: "success", RunStatus.CANCELLED: "cancelled"}


async def fire_once(
    client: DbtCloudClient,
    settings: DbtJobTrigger,
    *,
    options: Mapping[str, Any] | None = None,
    rerun_of: int | None = None,
) -> FireOutcome:
    """Apply the mode to the job's active runs and start one run when the mode says so.

    ``options`` go into the trigger-run body; with ``rerun_of`` (a failed run afterload
    started, still the job's newest) the job's rerun endpoint is used instead.
    """
    cancelled: list[int] = []
    try:
        if settings.mode != "ignore":
            active = await client.list_active_runs()
            if active and settings.mode == "skip":
                states = ", ".join(f"run {r.id} is {r.status_humanized.lower()}" for r in active)
                return FireOutcome(
                    "skipped", f"skipped, {states}", active=tuple(r.id for r in active)
                )
            for run in active:
                await _cancel(client, run)
                cancelled.append(run.id)
        rerun = rerun_of is not None and not cancelled
        run = await client.trigger_run(settings.cause, options, rerun=rerun)
    except DbtCloudError as exc:
        done = f" after cancelling runs {cancelled}" if cancelled else ""
        return FireOutcome("failed", f"failed{done} ({exc})", cancelled=tuple(cancelled))
    text = f"replaced runs {cancelled} with {run.id}" if cancelled else f"started run {run.id}"
    if rerun:
        text = (
            f"reran failed run {rerun_of} from the point of failure as run {run.id}; "
            "newer data waits for a full run"
        )
    return FireOutcome(
        "started",
        text,
        run_id=run.id,
        url=client.run_url(run),
        cancelled=tuple(cancelled),
        covers=not rerun,
    )


async def _cancel(client: DbtCloudClient, run: Run) -> None:
    """Cancel a run; one that finished in the meantime is not an error."""
    try:
        await client.cancel_run(run.id)
    except DbtCloudError as exc:
        if exc.status_code in (401, 403):
            raise
        current = await client.get_run(run.id)
        if current.is_active:
            raise DbtCloudError(
                f"cannot cancel run {run.id}: {exc}", fatal=exc.fatal, status_code=exc.status_code
            ) from None


def select_step(source: str, tables: Iterable[str]) -> str:
    """``dbt build --select source:S.T+ …``: each changed table and what depends on it."""
    return "dbt build --select " + " ".join(f"source:{source}.{table}+" for table in tables)


class DbtCloudAction:
    """Implements :class:`afterload.triggers.base.TriggerAction` for a dbt Cloud job."""

    def __init__(
        self,
        settings: DbtJobTrigger,
        *,
        client: DbtCloudClient | None = None,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        tables: Iterable[str] = (),
    ) -> None:
        self.settings = settings
        self.label = f"dbt job {settings.job_id}"
        self.name = f"dbt_job_trigger/{settings.job_id}"
        """Keys this trigger's state in the checkpoint and its ledger rows."""
        self.mode: str = settings.mode
        self.on_start: str = settings.on_start
        self.interval = settings.interval.total_seconds()
        self._own_client = client is None
        self.client = client or DbtCloudClient(settings.target(), clock=clock, retry=retry)
        self.job: Job | None = None
        self.all_tables: tuple[str, ...] = tuple(tables)
        """Every binding's table: what ``select_changed`` selects when it does not know
        which tables changed (the fire at start covers an earlier process's commits)."""
        self.last_started: int | None = None
        """The run this trigger started last (``rerun_failed`` reruns only such a run)."""
        self._changed: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        s = self.settings
        return f"DbtCloudAction(job {s.job_id} in account {s.account_id}, mode={s.mode})"

    def on_commit(self, commit: CommitFacts) -> None:
        """The listener: note the tables that received data (O(1), any thread)."""
        if commit.tables:
            with self._lock:
                self._changed.update(commit.tables)

    async def fire(self) -> FireOutcome:
        with self._lock:
            tables = set(self._changed)
        options: dict[str, Any] = self.settings.run_options().model_dump(exclude_none=True)
        select = self.settings.select_changed
        if select is not None:
            chosen = sorted(tables or self.all_tables)
            if chosen:
                options["steps_override"] = [select_step(select.source, chosen)]
        rerun_of = await self._failed_run_to_rerun() if self.settings.rerun_failed else None
        outcome = await fire_once(self.client, self.settings, options=options, rerun_of=rerun_of)
        if outcome.started:
            self.last_started = outcome.run_id
        if outcome.started and outcome.covers:
            with self._lock:
                self._changed -= tables
        return outcome

    async def _failed_run_to_rerun(self) -> int | None:
        """The run afterload started last, if it ended in error and is still the job's newest
        (the rerun endpoint retries the job's newest run: never one afterload did not start)."""
        if self.last_started is None:
            return None
        try:
            run = await self.client.get_run(self.last_started)
            if run.status != RunStatus.ERROR:
                return None
            newest = await self.client.list_runs(limit=1)
        except DbtCloudError:
            return None  # the fire that follows reports the trouble
        if not newest or newest[0].id != run.id:
            return None
        return run.id

    async def check(self) -> str:
        """Read the job, which proves the URL, the key, the account and the job id together.

        One attempt with a short timeout (unless a client was handed in): someone waits on a
        check — the ``check`` command, or a run before its first commit — and a hung dbt
        Cloud must not hold loading back for the retries' two minutes."""
        if self._own_client:
            async with DbtCloudClient.interactive(self.settings.target()) as quick:
                job = self.job = await quick.get_job()
        else:
            job = self.job = await self.client.get_job()
        s = self.settings
        return (
            f"dbt Cloud job {job.id} ({job.name or 'unnamed'}) in account {s.account_id} "
            f"at {s.base_url} is reachable with this key"
        )

    async def wait(self, outcome: FireOutcome, timeout: float) -> RunEnd:
        assert outcome.run_id is not None
        final = await self.client.wait_for_run(outcome.run_id, timeout)
        message = f"run {final.id}: {final.status_humanized}"
        if final.is_active:
            waited = format_duration(timedelta(seconds=timeout))
            return RunEnd("timeout", f"{message}, still going after waiting {waited}")
        try:
            result = _RESULTS.get(RunStatus(final.status), "error")
        except ValueError:
            result = "error"
        return RunEnd(result, message)  # type: ignore[arg-type]

    async def run_state(self, run_id: int) -> tuple[str, datetime | None] | None:
        """How a run ended (``success``, ``error``, ``cancelled``) and when; None while going."""
        run = await self.client.get_run(run_id)
        if run.is_active:
            return None
        try:
            result = _RESULTS.get(RunStatus(run.status), "error")
        except ValueError:
            result = "error"
        finished = None
        if run.finished_at:
            with contextlib.suppress(ValueError):
                finished = datetime.fromisoformat(run.finished_at.replace("Z", "+00:00"))
        return result, finished

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.aclose()
