"""The root of the config: one materialization. Each block's model lives beside its owner."""

from __future__ import annotations

from typing import Any

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from afterload.destinations.config import DestinationConfig
from afterload.fields import NAME_PATTERN, Strict
from afterload.ndjson.config import Binding, TransactionLimits
from afterload.ndjson.sync_schedule import SyncSchedule
from afterload.triggers.dbt_cloud.config import DbtJobTrigger, is_cleared
from afterload.triggers.dbt_core.config import DbtCoreTrigger
from afterload.triggers.webhook.config import WebhookTriggers


class Config(Strict):
    """A materialization: where data lands and which dbt Cloud job to keep fresh."""

    name: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        max_length=200,
        description="The materialization's name; keys its checkpoint.",
    )
    destination: DestinationConfig | None = None
    sync_schedule: SyncSchedule = Field(default_factory=SyncSchedule, alias="syncSchedule")
    bindings: list[Binding] = Field(default_factory=list)
    transaction: TransactionLimits = Field(default_factory=TransactionLimits)
    dbt_job_trigger: DbtJobTrigger | None = Field(
        default=None,
        description="Optional: the dbt Cloud job to trigger after commits. A block whose "
        "every field is empty (Estuary's cleared form) means no trigger.",
    )
    dbt_job_triggers: list[DbtJobTrigger] = Field(
        default_factory=list,
        description="More dbt Cloud jobs to trigger, each with its own mode, interval and "
        "options (dbt_job_trigger stays the original connector's single block).",
    )
    triggers: WebhookTriggers | None = Field(
        default=None,
        description="Optional: Estuary's Materialization Triggers, webhooks called after "
        "commits that stored documents.",
    )

    dbt_core_trigger: DbtCoreTrigger | None = Field(
        default=None,
        description="Optional: a local dbt project to build (dbt Core) after commits; "
        "paths are relative to the config file.",
    )
    _trigger_cleared: bool = PrivateAttr(default=False)

    @field_validator("dbt_job_triggers")
    @classmethod
    def _one_block_per_job(
        cls, value: list[DbtJobTrigger], info: ValidationInfo
    ) -> list[DbtJobTrigger]:
        """A job's state (what its runs cover, its ledger) is kept by job id: two blocks of
        one job would share it, and one's run would count as the other's."""
        first = info.data.get("dbt_job_trigger")
        seen = {first.job_id} if isinstance(first, DbtJobTrigger) else set()
        for block in value:
            if block.job_id in seen:
                raise ValueError(
                    f"job {block.job_id} is given twice (with dbt_job_trigger or in this list); "
                    "one block per job"
                )
            seen.add(block.job_id)
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _cleared_trigger(cls, data: Any, handler: ModelWrapValidatorHandler[Config]) -> Config:
        """Estuary's cleared ``dbt_job_trigger`` (every field empty) is no trigger, as there."""
        cleared = isinstance(data, dict) and is_cleared(data.get("dbt_job_trigger"))
        if cleared:
            data = {**data, "dbt_job_trigger": None}
        config = handler(data)
        config._trigger_cleared = cleared
        return config

    @property
    def trigger_cleared(self) -> bool:
        """The config held a cleared ``dbt_job_trigger`` block, so no job is triggered."""
        return self._trigger_cleared

    def dbt_jobs(self) -> list[DbtJobTrigger]:
        """Every dbt Cloud job to trigger: ``dbt_job_trigger`` first, then ``dbt_job_triggers``."""
        first = [self.dbt_job_trigger] if self.dbt_job_trigger is not None else []
        return first + list(self.dbt_job_triggers)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the whole config, the form a UI or an editor would use."""
    schema = Config.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "afterload materialization"
    return schema
