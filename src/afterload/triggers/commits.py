"""What a trigger hears of a commit: the small interface triggers need from the core.

Triggers may not import the core (data flows one way), so they name here the facts they read
from the core's ``Commit`` and ``CommitStamp``; both satisfy :class:`CommitFacts`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class CommitFacts(Protocol):
    """A commit as a trigger sees it."""

    @property
    def sequence(self) -> int:
        """The destination's commit count after this commit: increases across restarts."""
        ...

    @property
    def tables(self) -> tuple[str, ...]:
        """The tables that received documents (empty: nothing for a trigger to do)."""
        ...

    @property
    def published_at(self) -> datetime | None:
        """The commit's ``flow_published_at``."""
        ...
