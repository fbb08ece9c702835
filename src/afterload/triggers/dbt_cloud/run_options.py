"""The options of dbt Cloud's trigger-run body, typed as dbt's OpenAPI v2 spec types them.

``TriggerRunRequestRequest`` in the spec: strings with ``minLength: 1`` (``git_sha``,
``git_branch``, ``schema_override``, ``dbt_version_override``, ``target_name_override``),
integers (``threads_override``, ``timeout_seconds_override``), a boolean
(``generate_docs_override``) and an array of non-empty strings (``steps_override``). They are
sent verbatim beside ``cause``; an option left out is not sent, so the job's own setting holds.

Beyond the spec's types, only what dbt Cloud would refuse anyway is refused here, so the
mistake surfaces at config load naming the key, not at the first fire: a bool or a float
where an integer belongs, fewer than one thread, a negative timeout, an empty step list, and a
step that is not a ``dbt`` command.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, field_validator

_INT32 = 2**31 - 1


def _integer(value: Any) -> int:
    """An integer as YAML gives it, or as ``${ENV}`` interpolation leaves it (digits)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not an integer")
    if isinstance(value, str):
        text = value.strip()
        if not text.lstrip("-").isdigit() or len(text) > 12:
            raise ValueError(f"{value!r} is not an integer")
        return int(text)
    return int(value)


Threads = Annotated[int, Field(ge=1, le=_INT32), BeforeValidator(_integer)]
Seconds = Annotated[int, Field(ge=0, le=_INT32), BeforeValidator(_integer)]
"""The bounds sit inside, before the validator, so the JSON Schema says minimum/maximum."""
NonEmpty = Annotated[str, Field(min_length=1)]


class RunOptionFields(BaseModel):
    """The options as fields, so ``dbt_job_trigger`` takes them flat, as dbt names them."""

    git_branch: NonEmpty | None = Field(
        default=None, description="The git branch to check out before running."
    )
    git_sha: NonEmpty | None = Field(
        default=None, description="The git SHA to check out before running."
    )
    schema_override: NonEmpty | None = Field(
        default=None, description="Overrides the destination schema of the job's target."
    )
    dbt_version_override: NonEmpty | None = Field(
        default=None, description="Overrides the dbt version (e.g. 'latest', 'versionless')."
    )
    threads_override: Threads | None = Field(
        default=None, description="Overrides the number of threads."
    )
    target_name_override: NonEmpty | None = Field(
        default=None, description="Overrides the target.name context variable."
    )
    generate_docs_override: StrictBool | None = Field(
        default=None, description="Overrides whether the run generates docs."
    )
    timeout_seconds_override: Seconds | None = Field(
        default=None, description="Overrides the run timeout, in seconds."
    )
    steps_override: list[NonEmpty] | None = Field(
        default=None,
        min_length=1,
        description="Overrides the job's dbt commands, e.g. ['dbt build --select orders+'].",
    )

    @field_validator("steps_override")
    @classmethod
    def _dbt_commands(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for index, step in enumerate(value):
            if step.split(maxsplit=1)[:1] != ["dbt"]:
                raise ValueError(f"step {index + 1} is not a dbt command (it must start with dbt)")
        return value

    def run_options(self) -> RunOptions:
        """The options that are set, as their own model."""
        return RunOptions.model_validate(
            {name: getattr(self, name) for name in RunOptionFields.model_fields}
        )


class RunOptions(RunOptionFields):
    """Options passed verbatim in the body of ``POST …/jobs/{id}/run/``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def empty(self) -> bool:
        return not self.model_dump(exclude_none=True)

    def body(self, cause: str) -> dict[str, Any]:
        """The request body: ``cause`` and each option that is set, as given."""
        return {"cause": cause, **self.model_dump(exclude_none=True)}
