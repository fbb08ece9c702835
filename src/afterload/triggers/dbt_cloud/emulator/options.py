"""The trigger-run body's options as the emulator accepts them: typed as dbt's spec types them.

A body whose options have the wrong type is answered 400 with dbt's field errors, so a client
that sends a string where dbt wants an integer learns it from the emulator, not from dbt.
"""

from __future__ import annotations

from typing import Any

#: Optional trigger-body fields that dbt echoes back in ``run.trigger``, by their spec type.
OVERRIDES: dict[str, str] = {
    "git_branch": "string",
    "git_sha": "string",
    "azure_pull_request_id": "integer",
    "github_pull_request_id": "integer",
    "gitlab_merge_request_id": "integer",
    "non_native_pull_request_id": "string",
    "schema_override": "string",
    "dbt_version_override": "string",
    "threads_override": "integer",
    "target_name_override": "string",
    "generate_docs_override": "boolean",
    "timeout_seconds_override": "integer",
    "steps_override": "array",
}

_MESSAGES = {
    "string": "Not a valid string.",
    "integer": "A valid integer is required.",
    "boolean": "Must be a valid boolean.",
    "array": 'Expected a list of items but got type "{}".',
}


def _fits(kind: str, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str) and value != ""
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    return isinstance(value, list) and all(isinstance(s, str) and s for s in value)


def option_errors(body: dict[str, Any]) -> dict[str, list[str]]:
    """dbt-style field errors for the options that are present and of the wrong type."""
    errors: dict[str, list[str]] = {}
    for name, kind in OVERRIDES.items():
        value = body.get(name)
        if value is not None and not _fits(kind, value):
            errors[name] = [_MESSAGES[kind].format(type(value).__name__)]
    return errors
