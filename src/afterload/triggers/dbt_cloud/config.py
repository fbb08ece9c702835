"""The ``dbt_job_trigger`` block: the original connector's keys, so a block pastes unchanged."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr, StrictBool, field_validator, model_validator

from afterload.fields import Duration, PositiveId, Strict, secret_url
from afterload.triggers.dbt_cloud.models import DbtCloudTarget
from afterload.triggers.dbt_cloud.run_options import RunOptionFields


class SelectChanged(Strict):
    """Build only what depends on the tables that received data."""

    source: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        max_length=200,
        description="The dbt source the tables belong to: each fire runs "
        "'dbt build --select source:SOURCE.TABLE+' for the tables that received data.",
    )


DEFAULT_CAUSE = "Estuary Flow"

#: Account prefixes Estuary's connector sends to a host of their own; any other prefix P goes
#: to P.us1.dbt.com (its trigger's host rule, matched exactly as it matches them).
PREFIX_HOSTS = {"emea": "emea.dbt.com", "au": "au.dbt.com"}


def is_cleared(block: object) -> bool:
    """Estuary's form of "no trigger": the block is there, but every field is empty."""
    return (
        isinstance(block, dict)
        and bool(block)
        and all(value is None or value == "" for value in block.values())
    )


class DbtJobTrigger(Strict, RunOptionFields):
    """Triggers a dbt Cloud job after data is committed: the original connector's block,
    plus dbt's trigger-run options (flat, as dbt names them), ``rerun_failed`` and
    ``select_changed``."""

    access_url: str | None = Field(
        default=None,
        description="The dbt Cloud access URL of the account (Account Settings), "
        "e.g. https://ab123.us1.dbt.com. http:// is accepted only for loopback hosts.",
        json_schema_extra={"format": "uri"},
    )
    account_prefix: str | None = Field(
        default=None,
        description="Legacy: the account prefix; used only when access_url is not set. "
        "Maps to https://{prefix}.us1.dbt.com, or https://emea.dbt.com and "
        "https://au.dbt.com for emea and au, as Estuary's connector does.",
        json_schema_extra={"deprecated": True},
    )
    account_id: PositiveId = Field(description="The dbt Cloud account id.")
    job_id: PositiveId = Field(description="The id of the dbt Cloud job to trigger.")
    api_key: SecretStr = Field(
        description="A dbt Cloud service token or personal access token.",
        json_schema_extra={"secret": True},
    )
    cause: str = Field(
        default=DEFAULT_CAUSE,
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

    @field_validator("cause", mode="before")
    @classmethod
    def _default_cause(cls, value: object) -> object:
        """An empty cause is the default, as Estuary's connector takes it."""
        return DEFAULT_CAUSE if value == "" else value

    @field_validator("api_key", mode="after")
    @classmethod
    def _check_key(cls, value: SecretStr) -> SecretStr:
        """An empty key would fail only at the first request, after every retry."""
        key = value.get_secret_value().strip()
        if not key:
            raise ValueError(
                "is empty: give the dbt Cloud API key (e.g. api_key: ${DBT_API_KEY}, "
                "with the variable set to the token)"
            )
        if not all("!" <= ch <= "~" for ch in key):
            raise ValueError(
                "holds spaces, control or non-ASCII characters, which no API key has "
                "and no HTTP header can carry"
            )
        return SecretStr(key)

    rerun_failed: StrictBool = Field(
        default=False,
        description="When the last run afterload started for this job ended in error, the "
        "next fire reruns it from the point of failure (the job's rerun endpoint).",
    )
    select_changed: SelectChanged | None = Field(
        default=None,
        description="Override the steps with 'dbt build --select source:SOURCE.TABLE+' for "
        "the tables that received data since the last run.",
    )

    @field_validator("access_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        parts = secret_url(value, "the API key")
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

    @model_validator(mode="after")
    def _options_agree(self) -> DbtJobTrigger:
        if self.select_changed is not None and self.steps_override is not None:
            raise ValueError("select_changed writes steps_override; set one of them, not both")
        overrides = sorted(self.run_options().model_dump(exclude_none=True))
        if self.select_changed is not None:
            overrides.append("select_changed")
        if self.rerun_failed and overrides:
            raise ValueError(
                "rerun_failed cannot be combined with run overrides ("
                + ", ".join(overrides)
                + "): dbt's rerun endpoint takes none, so the rerun would not run them"
            )
        return self

    @property
    def base_url(self) -> str:
        """The account's API host, without a trailing slash."""
        if self.access_url is not None:
            return self.access_url
        prefix = self.account_prefix
        return f"https://{PREFIX_HOSTS.get(str(prefix), f'{prefix}.us1.dbt.com')}"

    def target(self) -> DbtCloudTarget:
        """What the HTTP client needs, and nothing of the config model."""
        return DbtCloudTarget(
            base_url=self.base_url,
            account_id=self.account_id,
            job_id=self.job_id,
            api_key=self.api_key,
        )
