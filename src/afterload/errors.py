"""Errors a user can cause, each carrying one sentence that says what and where.

The CLI prints ``str(error)`` and exits non-zero without a traceback; anything that is
not an :class:`AfterloadError` is a bug and keeps its traceback.
"""

from __future__ import annotations


class AfterloadError(Exception):
    """A problem the user can fix: bad config, bad input, bad credentials, a server down."""

    exit_code: int = 1


class ConfigError(AfterloadError):
    """The config file is unreadable or invalid; ``problems`` holds one line per problem."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))
