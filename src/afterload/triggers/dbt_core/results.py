"""What one dbt run did: the fields of run_results.json we use, and the run's outcome.

Only the fields afterload reads are modelled (others are ignored), so a newer dbt that adds
fields still parses. The outcome is decided from how the process ended, not from the file
alone: a run we interrupted or timed out may have written no file at all.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Outcome = Literal["success", "error", "cancelled", "timeout"]

#: Exit codes of ``afterload trigger --wait`` for each outcome, as for dbt Cloud.
EXIT_CODES: dict[Outcome, int] = {"success": 0, "error": 1, "cancelled": 2, "timeout": 3}

_FAILED = frozenset({"error", "fail", "runtime error"})
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_NODE_HEADING = re.compile(r"^[\w ]*Error in \w+ ")


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class NodeResult(_Loose):
    unique_id: str
    status: str
    execution_time: float = 0.0
    message: str | None = None

    @property
    def failed(self) -> bool:
        return self.status.lower() in _FAILED


class RunMetadata(_Loose):
    invocation_id: str | None = None
    dbt_version: str | None = None


class RunResults(_Loose):
    metadata: RunMetadata = Field(default_factory=RunMetadata)
    results: tuple[NodeResult, ...] = ()
    elapsed_time: float = 0.0

    @property
    def success(self) -> bool:
        return not any(r.failed for r in self.results)

    @property
    def failures(self) -> tuple[NodeResult, ...]:
        return tuple(r for r in self.results if r.failed)

    @classmethod
    def read(cls, path: Path, invocation_id: str | None) -> RunResults | None:
        """The file if it belongs to ``invocation_id`` (a stale file from another run is None)."""
        try:
            found = cls.model_validate_json(path.read_bytes())
        except (OSError, ValidationError):
            return None
        if invocation_id is not None and found.metadata.invocation_id != invocation_id:
            return None
        return found


class DbtResult(BaseModel):
    """The end of one dbt run; ``message`` is one sentence fit for a log line or the CLI."""

    model_config = ConfigDict(frozen=True)

    outcome: Outcome
    message: str
    returncode: int | None = None
    seconds: float = 0.0
    run_results: RunResults | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]


def _informative(text: str) -> list[str]:
    out = []
    for raw in _ANSI.sub("", text).splitlines():
        line = raw.strip()
        if not line or (line.endswith("Error") and " " not in line.removesuffix(" Error")):
            continue  # "Runtime Error", "Compilation Error": a heading, not the problem
        if line == "Encountered an error:" or set(line) <= {"-", "="}:
            continue
        out.append(line)
    return out


def _cut(line: str, limit: int) -> str:
    return line if len(line) <= limit else line[: limit - 1] + "…"


def first_line(text: str, limit: int = 300) -> str:
    """The first informative line of a dbt message, without colours, headings or indentation."""
    lines = _informative(text)
    if not lines:
        return ""
    head = lines[0]
    if head.endswith(":") and len(lines) > 1:
        # "… The valid target names for this profile are:" says nothing without its list.
        head = " ".join([head, *lines[1:6]])
    return _cut(head, limit)


def node_problem(text: str, limit: int = 300) -> str:
    """A failed node's problem: past dbt's "Runtime Error in model x (file)" heading, which
    only repeats the node we already name."""
    lines = _informative(text)
    if len(lines) > 1 and _NODE_HEADING.match(lines[0]):
        lines = lines[1:]
    return _cut(lines[0], limit) if lines else ""


def failure_sentence(command: str, results: RunResults) -> str:
    """One sentence naming the first failed node and how many more failed."""
    failed = results.failures
    if not failed:
        return f"dbt {command} failed"
    head = failed[0]
    why = node_problem(head.message or "") or head.status
    more = f" ({len(failed) - 1} more failed)" if len(failed) > 1 else ""
    return f"dbt {command}: {head.unique_id} failed: {why}{more}"


def connection_problem(text: str, limit: int = 300) -> str:
    """What ``dbt debug --connection`` says the database answered, past dbt's advice lines."""
    lines = _informative(text.replace(">", " "))
    for marker in ("The database returned the following error:", "Connection test: [ERROR]"):
        if marker in lines and lines.index(marker) + 1 < len(lines):
            return _cut(lines[lines.index(marker) + 1], limit)
    useful = [ln for ln in lines if not ln.endswith("check failed:")]
    return _cut(useful[0], limit) if useful else "see the dbt log"
