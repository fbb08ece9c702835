"""The seam through which triggers keep their state in the checkpoint, beside the data.

The core knows nothing of triggers: it asks each :class:`TriggerStateSource` for its opaque
JSON when it builds a commit's checkpoint, and hands the stored JSON back when it opens. A
trigger that owes work (a webhook window not yet delivered, dbt freshness not yet covered)
so survives a SIGKILL exactly as far as the data it is about.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pydantic import JsonValue


@dataclass(frozen=True, slots=True)
class CommitStamp:
    """What a trigger needs to know of a commit before it is stored."""

    sequence: int
    """The destination's commit count after this commit: increases across restarts."""
    tables: tuple[str, ...]
    """The tables that received documents (empty: a commit that stored none)."""
    published_at: datetime
    """The commit's ``flow_published_at``."""


class TriggerStateSource(Protocol):
    """A trigger whose state is committed with the data."""

    def restore(self, states: Mapping[str, JsonValue]) -> None:
        """Take back what the last commit stored (all triggers' states, keyed by trigger)."""
        ...

    def states(self, upcoming: CommitStamp) -> dict[str, JsonValue]:
        """This trigger's entries for the checkpoint of ``upcoming``, as if it stood already
        (an entry set to None is dropped: the trigger owes nothing).

        Called on the commit path: pure bookkeeping under a lock, never I/O.
        """
        ...

    def changed(self) -> bool:
        """Whether the state moved (a delivery ended) since :meth:`states` was last asked."""
        ...
