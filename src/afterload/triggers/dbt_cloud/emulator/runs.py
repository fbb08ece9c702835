"""The emulated runs: how a run moves through its states on the clock, and how the API shows
runs and jobs. Pure functions of a run, the time and the settings; the app holds the lock."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from afterload.triggers.dbt_cloud.emulator.settings import (
    ACTIVE,
    CANCELLED,
    ERROR,
    HUMANIZED,
    QUEUED,
    RUNNING,
    STARTING,
    SUCCESS,
    EmulatorSettings,
)


@dataclass
class EmulatedRun:
    """What a run is made of; its status and timestamps are derived from these and the clock."""

    id: int
    account_id: int
    job_id: int
    trigger: dict[str, Any]
    href: str
    created: float
    fails: bool
    eligible: float  # when no earlier run of the same job is active any more
    cancelled: float | None = None


def phases(run: EmulatedRun, settings: EmulatorSettings) -> tuple[float, float, float]:
    """When the run would be dequeued, start running and finish, if never cancelled."""
    queue = settings.queue_seconds
    starting = min(1.0, queue / 2)
    dequeued = run.eligible + queue - starting
    started = run.eligible + queue
    return dequeued, started, started + settings.run_seconds


def run_status(run: EmulatedRun, now: float, settings: EmulatorSettings) -> int:
    if run.cancelled is not None:
        return CANCELLED
    dequeued, started, finished = phases(run, settings)
    if now < dequeued:
        return QUEUED
    if now < started:
        return STARTING
    if now < finished:
        return RUNNING
    return ERROR if run.fails else SUCCESS


def finish_time(run: EmulatedRun, now: float, settings: EmulatorSettings) -> float | None:
    if run.cancelled is not None:
        return run.cancelled
    end = phases(run, settings)[2]
    return end if end <= now else None


def schedule(runs: list[EmulatedRun], settings: EmulatorSettings) -> None:
    """Recompute when each run of one job may leave the queue (after creation or a cancel)."""
    busy_until = -math.inf
    for run in runs:
        run.eligible = max(run.created, busy_until) if settings.serial else run.created
        end = run.cancelled if run.cancelled is not None else phases(run, settings)[2]
        busy_until = max(busy_until, end)


def render_job(account_id: int, job_id: int, born: float) -> dict[str, Any]:
    return {
        "id": job_id,
        "account_id": account_id,
        "project_id": project_id(account_id),
        "environment_id": environment_id(account_id),
        "name": f"Emulated job {job_id}",
        "description": "A job of the local dbt Cloud emulator.",
        "dbt_version": None,
        "execute_steps": ["dbt build"],
        "execution": {"timeout_seconds": 0},
        "generate_docs": False,
        "generate_sources": False,
        "job_type": "other",
        "lifecycle_webhooks": False,
        "run_compare_changes": False,
        "run_generate_sources": False,
        "run_lint": False,
        "errors_on_lint_failure": True,
        "settings": {"threads": 4, "target_name": "default"},
        "state": 1,
        "triggers": {"github_webhook": False, "schedule": False, "git_provider_webhook": False},
        "triggers_on_draft_pr": False,
        "deferring_environment_id": None,
        "deferring_job_definition_id": None,
        "created_at": timestamp(born),
        "updated_at": timestamp(born),
    }


def render_run(
    run: EmulatedRun,
    now: float,
    settings: EmulatorSettings,
    born: float,
    *,
    as_created: bool = False,
) -> dict[str, Any]:
    """The run as the API shows it at ``now``; ``as_created`` is the trigger's answer."""
    at = run.created if as_created else now
    status = QUEUED if as_created else run_status(run, now, settings)
    stop = at if run.cancelled is None else min(at, run.cancelled)
    dequeued, started, _ = phases(run, settings)
    dequeued_at = dequeued if not as_created and dequeued <= stop else None
    started_at = started if not as_created and started <= stop else None
    finished_at = None if as_created else finish_time(run, now, settings)
    end = finished_at if finished_at is not None else at
    complete = status not in ACTIVE
    seen = [t for t in (run.created, dequeued_at, started_at, finished_at) if t is not None]
    messages = {ERROR: "Emulated failure (fail_rate).", CANCELLED: "Cancelled by user."}
    return {
        "id": run.id,
        "trigger_id": run.trigger["id"],
        "account_id": run.account_id,
        "environment_id": environment_id(run.account_id),
        "project_id": project_id(run.account_id),
        "job_definition_id": run.job_id,
        "job_id": run.job_id,
        "status": status,
        "status_humanized": HUMANIZED[status],
        "status_message": messages.get(status),
        "dbt_version": "latest",
        "git_branch": run.trigger.get("git_branch"),
        "git_sha": run.trigger.get("git_sha"),
        "deferring_run_id": None,
        "artifacts_saved": status in (SUCCESS, ERROR),
        "artifact_s3_path": None,
        "has_docs_generated": False,
        "has_sources_generated": False,
        "notifications_sent": complete,
        "blocked_by": [],
        "created_at": timestamp(run.created),
        "updated_at": timestamp(max(seen)),
        "dequeued_at": timestamp(dequeued_at),
        "started_at": timestamp(started_at),
        "finished_at": timestamp(finished_at),
        "last_checked_at": None,
        "last_heartbeat_at": timestamp(now) if status == RUNNING else None,
        "should_start_at": None,
        "in_progress": not complete,
        "is_complete": complete,
        "is_success": status == SUCCESS,
        "is_error": status == ERROR,
        "is_cancelled": status == CANCELLED,
        "is_running": status == RUNNING,
        **durations("duration", end - run.created),
        **durations("queued_duration", (started_at or end) - run.created),
        **durations("run_duration", end - started_at if started_at is not None else 0.0),
        "created_at_humanized": f"{humanize(at - run.created)} ago",
        "finished_at_humanized": (
            None if finished_at is None else f"{humanize(at - finished_at)} ago"
        ),
        "retrying_run_id": None,
        "can_retry": status == ERROR,
        "retry_not_supported_reason": None if status == ERROR else "RETRY_NOT_FAILED_RUN",
        "used_repo_cache": False,
        "href": run.href,
        "trigger": dict(run.trigger),
        "job": render_job(run.account_id, run.job_id, born),
        "run_steps": [],
    }


def project_id(account_id: int) -> int:
    return 100_000 + account_id


def environment_id(account_id: int) -> int:
    return 200_000 + account_id


def timestamp(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(sep=" ", timespec="microseconds")


def durations(name: str, seconds: float) -> dict[str, str]:
    whole = max(0, int(seconds))
    clock = f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    return {name: clock, f"{name}_humanized": humanize(seconds)}


def humanize(seconds: float) -> str:
    left = max(0, int(seconds))
    parts: list[str] = []
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        count, left = divmod(left, size)
        if count or (unit == "second" and not parts):
            parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return ", ".join(parts)
