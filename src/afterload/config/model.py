"""The root of the config: one materialization. Each block's model lives beside its owner."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from afterload.destinations.config import DestinationConfig
from afterload.fields import Strict
from afterload.ndjson.config import Binding, TransactionLimits
from afterload.ndjson.sync_schedule import SyncSchedule
from afterload.triggers.dbt_cloud.config import DbtJobTrigger
from afterload.triggers.dbt_core.config import DbtCoreTrigger


class Config(Strict):
    """A materialization: where data lands and which dbt Cloud job to keep fresh."""

    name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$",
        max_length=200,
        description="The materialization's name; keys its checkpoint.",
    )
    destination: DestinationConfig | None = None
    sync_schedule: SyncSchedule = Field(default_factory=SyncSchedule, alias="syncSchedule")
    bindings: list[Binding] = Field(default_factory=list)
    transaction: TransactionLimits = Field(default_factory=TransactionLimits)
    dbt_job_trigger: DbtJobTrigger | None = Field(
        default=None, description="Optional: the dbt Cloud job to trigger after commits."
    )
    dbt_core_trigger: DbtCoreTrigger | None = Field(
        default=None,
        description="Optional: a local dbt project to build (dbt Core) after commits; "
        "paths are relative to the config file.",
    )


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the whole config, the form a UI or an editor would use."""
    schema = Config.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "afterload materialization"
    return schema
