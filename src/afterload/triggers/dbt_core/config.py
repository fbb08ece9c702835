"""The ``dbt_core_trigger`` block, and the values its ``vars`` may name.

Paths are relative to the config file, so a config and its dbt project move together: the
loader passes the file's folder as ``context={"config_dir": ...}``. ``vars`` values may hold
``{{ name }}`` placeholders; only the names of :class:`FireContext` exist, and any other is a
config error at load time, never a surprise at the first fire.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from afterload.fields import Duration

Command = Literal["build", "run", "test", "seed", "snapshot"]

#: ``{{ name }}`` with optional spaces; anything else between braces is left to dbt's Jinja.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
#: Before any commit is known (the start-up fire), "since" means since the beginning.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class FireContext(BaseModel):
    """What one fire knows about the data it covers: the names ``vars`` may use."""

    model_config = ConfigDict(frozen=True)

    materialization_name: str = ""
    flow_published_at_min: datetime | None = None
    flow_published_at_max: datetime | None = None
    collection_names: tuple[str, ...] = ()

    def values(self, now: datetime) -> dict[str, str]:
        """Each name as the text it renders to; unknown bounds widen to everything up to now."""
        low = self.flow_published_at_min or EPOCH
        high = self.flow_published_at_max or now
        return {
            "materialization_name": self.materialization_name,
            "flow_published_at_min": low.astimezone(UTC).isoformat(),
            "flow_published_at_max": high.astimezone(UTC).isoformat(),
            "collection_names": ",".join(self.collection_names),
        }


KNOWN_NAMES = tuple(FireContext.model_fields)


def _placeholders(value: Any) -> list[str]:
    if isinstance(value, str):
        return PLACEHOLDER.findall(value)
    if isinstance(value, dict):
        return [n for v in value.values() for n in _placeholders(v)]
    if isinstance(value, list):
        return [n for v in value for n in _placeholders(v)]
    return []


def _render(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: names[m.group(1)], value)
    if isinstance(value, dict):
        return {k: _render(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, names) for v in value]
    return value


class DbtCoreTrigger(BaseModel):
    """Runs a local dbt project after data is committed, with dbt Cloud's schedule and modes."""

    model_config = ConfigDict(extra="forbid")

    project_dir: Path = Field(description="The dbt project (holds dbt_project.yml).")
    profiles_dir: Path | None = Field(
        default=None, description="Where profiles.yml is; default: project_dir."
    )
    target: str | None = Field(default=None, min_length=1, description="The profile's target.")
    command: Command = Field(default="build", description="The dbt command each fire runs.")
    select: str | None = Field(default=None, min_length=1, description="dbt --select.")
    vars: dict[str, Any] = Field(
        default_factory=dict,
        description="dbt --vars; string values may use {{ flow_published_at_min }}, "
        "{{ flow_published_at_max }}, {{ materialization_name }}, {{ collection_names }}.",
    )
    mode: Literal["skip", "replace", "ignore"] = Field(
        default="skip",
        description="When dbt is still running: skip starts nothing, replace interrupts it and "
        "starts another, ignore starts another once it ends.",
    )
    interval: Duration = Field(
        default=timedelta(minutes=30),
        description="At most one run per interval, and only after new data was committed.",
        json_schema_extra={"default": "30m"},
    )
    timeout: Duration = Field(
        default=timedelta(hours=1),
        description="A run still going after this is stopped and counts as timed out.",
        json_schema_extra={"default": "1h"},
    )

    @field_validator("project_dir", "profiles_dir", mode="after")
    @classmethod
    def _relative_to_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None or value.is_absolute():
            return value
        base = (info.context or {}).get("config_dir")
        return (Path(base) / value) if base is not None else value

    @field_validator("vars", mode="after")
    @classmethod
    def _known_placeholders(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise ValueError("values must be strings, numbers, booleans, lists or maps") from None
        for name in _placeholders(value):
            if name not in KNOWN_NAMES:
                known = ", ".join(KNOWN_NAMES)
                raise ValueError(f"unknown placeholder {{{{ {name} }}}} (known: {known})")
        return value

    @field_validator("timeout", mode="after")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be more than 0s")
        return value

    @model_validator(mode="after")
    def _default_profiles_dir(self) -> DbtCoreTrigger:
        if self.profiles_dir is None:
            self.profiles_dir = self.project_dir
        return self

    @property
    def profiles(self) -> Path:
        return self.profiles_dir if self.profiles_dir is not None else self.project_dir

    def rendered_vars(self, context: FireContext, now: datetime) -> dict[str, Any]:
        """``vars`` with each placeholder replaced by the fire's value."""
        rendered = _render(self.vars, context.values(now))
        assert isinstance(rendered, dict)
        return rendered
