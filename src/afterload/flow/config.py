"""The connector's endpoint and resource configs, as Flow hands them in Validate/Apply/Open.

The endpoint config is afterload's own blocks under Estuary's keys: ``destination`` (the
``duckdb`` or ``postgres`` block of an afterload config), ``hardDelete``,
``dbt_job_trigger`` (Estuary's block, key for key, so a block copied from an Estuary
materialization works) and ``syncSchedule`` (Estuary's keys). One difference from
Estuary: a half-filled ``dbt_job_trigger`` is an error naming what is missing, not a
trigger silently switched off. Flow's UI sends empty strings for unset optional keys, so
those read as unset.
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from afterload.config.problems import validation_problems
from afterload.destinations.config import DestinationConfig as Destination
from afterload.errors import ConfigError
from afterload.ndjson.sync_schedule import SyncSchedule
from afterload.triggers.dbt_cloud.config import DbtJobTrigger


def _drop_empty(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v != ""}
    return value


class FlowDbtJobTrigger(BaseModel):
    """Estuary's ``dbt_job_trigger`` block: every key optional, all four ids or none."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"description": "Estuary's dbt Cloud Job Trigger."}
    )

    job_id: str = Field(default="", title="Job ID", description="dbt job ID")
    account_id: str = Field(default="", title="Account ID", description="dbt account ID")
    access_url: str = Field(
        default="",
        title="Access URL",
        description="The dbt access URL from your Account Settings, e.g. https://ab123.us1.dbt.com.",
        json_schema_extra={"pattern": "^https?://.+$"},  # http:// for loopback only
    )
    account_prefix: str = Field(default="", json_schema_extra={"deprecated": True})
    api_key: SecretStr = Field(
        default=SecretStr(""),
        title="API Key",
        description="dbt API Key",
        json_schema_extra={"secret": True},
    )
    cause: str = Field(
        default="",
        title="Cause Message",
        description="The cause recorded on each run; defaults to 'Estuary Flow'.",
    )
    mode: str = Field(
        default="skip",
        title="Job Trigger Mode",
        description="skip: no new run while one is queued or running; replace: cancel it "
        "and start a new one; ignore: start another regardless.",
        json_schema_extra={"enum": ["skip", "replace", "ignore"]},
    )
    interval: str = Field(
        default="30m",
        title="Minimum Run Interval",
        description="At most one run per interval, and only after data was committed.",
    )

    @field_validator("job_id", "account_id", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    def trigger(self) -> DbtJobTrigger | None:
        """The afterload trigger this block configures, or None when it is left empty.

        Raises ConfigError naming the missing keys when only some are set, and every
        other problem as afterload's own config would (secrets never echoed).
        """
        ids = {
            "job_id": self.job_id,
            "account_id": self.account_id,
            "api_key": self.api_key.get_secret_value(),
            "access_url": self.access_url or self.account_prefix,
        }
        if not any(ids.values()):
            return None
        missing = [key for key, value in ids.items() if not value]
        if missing:
            raise ConfigError([f"endpoint config: dbt_job_trigger is missing {', '.join(missing)}"])
        raw: dict[str, Any] = {
            "job_id": self.job_id,
            "account_id": self.account_id,
            "api_key": self.api_key.get_secret_value(),
            "mode": self.mode,
            "interval": self.interval,
        }
        if self.access_url:
            raw["access_url"] = self.access_url
        if self.account_prefix:
            raw["account_prefix"] = self.account_prefix
        if self.cause:
            raw["cause"] = self.cause
        try:
            return DbtJobTrigger.model_validate(raw)
        except ValidationError as err:
            raise ConfigError(
                validation_problems(err, {}, "endpoint config: dbt_job_trigger")
            ) from None


class EndpointConfig(BaseModel):
    """What ``spec`` returns as ``configSchema``."""

    model_config = ConfigDict(
        extra="forbid",
        title="afterload",
        json_schema_extra={"description": "Materialize into DuckDB or PostgreSQL with afterload."},
    )

    destination: Destination = Field(
        description="Where the tables live: exactly one of duckdb or postgres."
    )
    hardDelete: StrictBool = Field(
        default=False,
        title="Hard Delete",
        description="A deletion removes the row; otherwise the row keeps the deletion "
        "document (_meta/op = 'd').",
    )
    dbt_job_trigger: FlowDbtJobTrigger = Field(
        default_factory=FlowDbtJobTrigger,
        title="dbt Cloud Job Trigger",
        description="Trigger a dbt Cloud job after new data is committed.",
    )
    syncSchedule: SyncSchedule = Field(
        default_factory=SyncSchedule,
        title="Sync Schedule",
        description="How often to commit once the sources are caught up.",
    )

    @field_validator("syncSchedule", "dbt_job_trigger", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return _drop_empty(value)


class ResourceConfig(BaseModel):
    """What ``spec`` returns as ``resourceConfigSchema``: one binding's table."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        title="Table",
        json_schema_extra={"description": "The table a collection is materialized into."},
    )

    table: str = Field(
        min_length=1,
        max_length=63,
        description="Name of the table.",
        json_schema_extra={"x-collection-name": True},
    )
    schema_: str | None = Field(
        default=None,
        alias="schema",
        min_length=1,
        max_length=63,
        description="Schema of the table; the destination's schema when unset.",
        json_schema_extra={"x-schema-name": True},
    )
    delta_updates: StrictBool = Field(
        default=False,
        description="Append every document instead of merging by key.",
        json_schema_extra={"x-delta-updates": True},
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_schema(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("schema") == "":
            return {k: v for k, v in value.items() if k != "schema"}
        return value

    @property
    def resource_path(self) -> list[str]:
        """``[schema, table]``, or ``[table]`` when the schema is the destination's."""
        return [self.schema_, self.table] if self.schema_ else [self.table]


def _parse(model: type[BaseModel], raw: Any, what: str) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(validation_problems(err, {}, what)) from None


def parse_endpoint(raw: Any) -> EndpointConfig:
    """The runtime's endpoint config → the model, or ConfigError with one line per problem."""
    config: EndpointConfig = _parse(EndpointConfig, raw, "endpoint config")
    config.dbt_job_trigger.trigger()  # a half-filled trigger fails here, at Validate
    return config


def parse_resource(raw: Any, binding: int) -> ResourceConfig:
    """One binding's resource config → the model, or ConfigError naming the binding."""
    resource: ResourceConfig = _parse(ResourceConfig, raw, f"binding {binding} resource config")
    return resource
