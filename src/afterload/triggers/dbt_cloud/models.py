"""Typed answers of dbt Cloud API v2 (runs, jobs) and the target the client talks to.

The API's objects carry dozens of fields; these keep the ones the trigger acts on and
tolerate the rest, so a field dbt adds or retypes never breaks a fire.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr


class DbtCloudTarget(BaseModel):
    """What the HTTP client needs: where, which account and job, and the key (a secret)."""

    model_config = ConfigDict(frozen=True)

    base_url: str
    """The account's access URL, without a trailing slash."""
    account_id: int
    job_id: int
    api_key: SecretStr


class RunStatus(IntEnum):
    QUEUED = 1
    STARTING = 2
    RUNNING = 3
    SUCCESS = 10
    ERROR = 20
    CANCELLED = 30


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.STARTING, RunStatus.RUNNING)
_HUMAN = {s: s.name.capitalize() for s in RunStatus}


class Run(BaseModel):
    """The fields of a dbt Cloud run the trigger acts on."""

    model_config = ConfigDict(frozen=True)

    id: int
    status: int
    job_id: int | None = None
    cause: str | None = None
    href: str | None = None
    created_at: str | None = None
    project_id: int | None = None
    finished_at: str | None = None

    @classmethod
    def from_api(cls, data: Any) -> Run:
        """Read a run object leniently; ValueError only when it has no integer id."""
        if not isinstance(data, dict) or not isinstance(data.get("id"), int):
            raise ValueError("not a run object")
        trigger = data.get("trigger")
        if not isinstance(trigger, dict):
            trigger = {}
        status = data.get("status")
        job = data.get("job_definition_id") or data.get("job_id")
        project = data.get("project_id")
        created = data.get("created_at")
        finished = data.get("finished_at")
        return cls(
            id=data["id"],
            status=status if isinstance(status, int) else 0,
            job_id=job if isinstance(job, int) else None,
            cause=trigger.get("cause") if isinstance(trigger.get("cause"), str) else None,
            href=data.get("href") if isinstance(data.get("href"), str) else None,
            created_at=created if isinstance(created, str) else None,
            project_id=project if isinstance(project, int) else None,
            finished_at=finished if isinstance(finished, str) else None,
        )

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def status_humanized(self) -> str:
        try:
            return _HUMAN[RunStatus(self.status)]
        except ValueError:
            return f"status {self.status}"


class Job(BaseModel):
    """A dbt Cloud job as ``check`` reports it."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    project_id: int | None = None
    environment_id: int | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any], job_id: int) -> Job:
        project, environment = data.get("project_id"), data.get("environment_id")
        return cls(
            id=int(data.get("id", job_id)),
            name=str(data.get("name", "")),
            project_id=project if isinstance(project, int) else None,
            environment_id=environment if isinstance(environment, int) else None,
        )
