"""The ``dbt_job_trigger`` block: the original connector's keys, so a block pastes unchanged."""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from afterload.fields import Duration, PositiveId, Strict
from afterload.triggers.dbt_cloud.models import DbtCloudTarget


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DbtJobTrigger(Strict):
    """Triggers a dbt Cloud job after data is committed: the original connector's block."""

    access_url: str | None = Field(
        default=None,
        description="The dbt Cloud access URL of the account (Account Settings), "
        "e.g. https://ab123.us1.dbt.com. http:// is accepted only for loopback hosts.",
        json_schema_extra={"format": "uri"},
    )
    account_prefix: str | None = Field(
        default=None,
        description="Legacy: the account prefix; used only when access_url is not set "
        "and maps to https://{prefix}.us1.dbt.com.",
        json_schema_extra={"deprecated": True},
    )
    account_id: PositiveId = Field(description="The dbt Cloud account id.")
    job_id: PositiveId = Field(description="The id of the dbt Cloud job to trigger.")
    api_key: SecretStr = Field(
        description="A dbt Cloud service token or personal access token.",
        json_schema_extra={"secret": True},
    )
    cause: str = Field(
        default="Estuary Flow",
        min_length=1,
        max_length=255,
        description="The cause recorded on each run dbt Cloud creates.",
    )
    mode: Literal["skip", "replace", "ignore"] = Field(
        default="skip",
        description="What to do when a run of the job is already queued, starting or running: "
        "skip starts nothing, replace cancels it and starts a new one, ignore starts another.",
    )
    interval: Duration = Field(
        default=timedelta(minutes=30),
        description="At most one run per interval, and only after new data was committed.",
        json_schema_extra={"default": "30m", "examples": ["30m", "1h", "90s", "0s"]},
    )
    on_start: Literal["always", "pending"] = Field(
        default="always",
        description="always: fire once at every start (the original's rule); pending: fire "
        "at start only when committed data is not yet covered by a run created after it.",
    )

    @field_validator("access_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"{value!r} is not an https:// URL")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError(
                f"{value!r} uses http://, which would send the API key in clear; "
                "use https:// (http:// is allowed only for loopback hosts)"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"{value!r} must not carry a query or fragment")
        return value.rstrip("/")

    @field_validator("account_prefix")
    @classmethod
    def _check_prefix(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9-]+", value):
            raise ValueError(f"{value!r} is not an account prefix (letters, digits, dashes)")
        return value

    @model_validator(mode="after")
    def _need_url(self) -> DbtJobTrigger:
        if self.access_url is None and self.account_prefix is None:
            raise ValueError("access_url is required")
        return self

    @property
    def base_url(self) -> str:
        """The account's API host, without a trailing slash."""
        if self.access_url is not None:
            return self.access_url
        return f"https://{self.account_prefix}.us1.dbt.com"

    def target(self) -> DbtCloudTarget:
        """What the HTTP client needs, and nothing of the config model."""
        return DbtCloudTarget(
            base_url=self.base_url,
            account_id=self.account_id,
            job_id=self.job_id,
            api_key=self.api_key,
        )
