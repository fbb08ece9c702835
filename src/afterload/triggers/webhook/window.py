"""What one webhook delivery covers: a window of committed transactions.

A window is the contiguous run of commits ``first..last`` (the destination's commit sequence
numbers; commits that stored no documents open no window and are simply skipped) together
with what Estuary's template variables say about them: the tables that received data, the
earliest and latest ``flow_published_at``, and ``run_id`` — the start of the window's first
transaction, as Estuary's runtime keeps the first transaction's ``run_id`` when it merges a
burst of transactions into one delivery.

Everything in a window is derived from its commits alone, so the same window always renders
the same payload with the same ``run_id``: a window re-delivered after a crash is byte for
byte the one the receiver may already have seen, and ``run_id`` works as the idempotency key
Estuary documents. That is why a window is immutable once sealed for delivery (see
:mod:`.schedule`): growing it after a failed attempt would send new data under an old
``run_id``, which a deduplicating receiver would drop.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def rfc3339(value: datetime) -> str:
    """Estuary's form of a timestamp: UTC with ``Z``, fractional digits only when needed."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    micros = value.microsecond
    if micros:
        text += f".{micros // 1000:03d}" if micros % 1000 == 0 else f".{micros:06d}"
    return text + "Z"


def rfc3339_millis(value: datetime) -> str:
    """Estuary's ``run_id`` form: UTC, always milliseconds, ``Z``."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S") + f".{value.microsecond // 1000:03d}Z"


class TriggerVariables(BaseModel):
    """Estuary's template variables (besides ``headers``), as rendered strings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    materialization_name: str
    collection_names: tuple[str, ...]
    connector_image: str
    flow_published_at_min: str
    flow_published_at_max: str
    run_id: str


class Window(BaseModel):
    """Commits ``first..last`` and what they carried; JSON-serialisable, for persisting."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    first: int = Field(ge=0, description="Commit sequence number of the first commit covered.")
    last: int = Field(ge=0, description="Commit sequence number of the last commit covered.")
    opened_at: datetime = Field(description="When the first commit's transaction started.")
    published_min: datetime = Field(description="Earliest flow_published_at in the window.")
    published_max: datetime = Field(description="Latest flow_published_at in the window.")
    collections: tuple[str, ...] = Field(
        min_length=1, description="The tables that received documents, sorted, each once."
    )

    @field_validator("opened_at", "published_min", "published_max")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a time zone")
        return value.astimezone(UTC)

    @field_validator("collections")
    @classmethod
    def _sorted_unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(value)))

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.last < self.first:
            raise ValueError("last must not precede first")
        if self.published_max < self.published_min:
            raise ValueError("published_max must not precede published_min")
        return self

    @classmethod
    def of_commit(
        cls,
        sequence: int,
        *,
        opened_at: datetime,
        published_min: datetime,
        published_max: datetime,
        collections: tuple[str, ...] | list[str],
    ) -> Window:
        """The window of one commit that stored documents into ``collections``."""
        return cls(
            first=sequence,
            last=sequence,
            opened_at=opened_at,
            published_min=published_min,
            published_max=published_max,
            collections=tuple(collections),
        )

    def merge(self, later: Window) -> Window:
        """This window widened by a later one: the span of both, the first one's run_id."""
        if later.first <= self.last:
            raise ValueError(
                f"commits {later.first}..{later.last} do not follow {self.first}..{self.last}"
            )
        return Window(
            first=self.first,
            last=later.last,
            opened_at=self.opened_at,
            published_min=min(self.published_min, later.published_min),
            published_max=max(self.published_max, later.published_max),
            collections=self.collections + later.collections,
        )

    def variables(self, *, materialization_name: str, connector_image: str) -> TriggerVariables:
        return TriggerVariables(
            materialization_name=materialization_name,
            collection_names=self.collections,
            connector_image=connector_image,
            flow_published_at_min=rfc3339(self.published_min),
            flow_published_at_max=rfc3339(self.published_max),
            run_id=rfc3339_millis(self.opened_at),
        )

    def describe(self) -> str:
        """For log lines: ``commits 4..9``."""
        if self.first == self.last:
            return f"commit {self.first}"
        return f"commits {self.first}..{self.last}"
