"""A pydantic ValidationError into one line per problem: file, line, key path, what is wrong.

Secrets are redacted here, the one place an input value could reach a message.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

#: Key paths to the 1-based line each stands on (see :func:`afterload.config.load.line_index`).
LineIndex = dict[tuple[str | int, ...], int]

SECRET_KEYS = ("api_key", "password")


def dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _message(err: Any) -> str:
    kind = err["type"]
    msg = str(err["msg"])
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known key (check its spelling)"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{err['input']!r} is not one of {expected}"
    if kind in ("string_too_long", "string_too_short"):
        ctx = err.get("ctx", {})
        bound = ctx.get("max_length", ctx.get("min_length"))
        word = "at most" if kind == "string_too_long" else "at least"
        return f"must be {word} {bound} characters"
    if kind == "string_pattern_mismatch":
        return f"{err['input']!r} is not valid here"
    if msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
    return msg


def _secrets_in(node: Any, under_headers: bool = False, depth: int = 0) -> list[str]:
    """The secret strings inside an error's input: ``api_key``/``password`` values, and every
    value of a webhook's ``headers`` map."""
    if depth > 8:
        return []
    if isinstance(node, str):
        return [node] if under_headers and node else []
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in SECRET_KEYS and isinstance(value, str) and value:
                found.append(value)
            else:
                found += _secrets_in(value, under_headers or key == "headers", depth + 1)
    elif isinstance(node, list | tuple):
        for value in node:
            found += _secrets_in(value, under_headers, depth + 1)
    return found


def _redact_secret(loc: tuple[str | int, ...], message: str, raw: Any) -> str:
    """Errors on secret fields (and on anything holding one) never echo the value."""
    secrets = _secrets_in(raw, under_headers="headers" in loc)
    if loc and loc[-1] in SECRET_KEYS and isinstance(raw, str) and raw:
        secrets.append(raw)
    for secret in sorted(set(secrets), key=len, reverse=True):
        message = message.replace(repr(secret), "(hidden)").replace(secret, "(hidden)")
    return message


def validation_problems(exc: ValidationError, lines: LineIndex, prefix: str) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        if loc[:2] == ("triggers", "config") and len(loc) > 2 and loc[2] in ("list", "map"):
            loc = loc[:2] + loc[3:]  # the tag of the webhook list's two forms
        where = prefix
        for n in range(len(loc), -1, -1):
            if loc[:n] in lines:
                where = f"{prefix}:{lines[loc[:n]]}"
                break
        text = _redact_secret(loc, _message(err), err.get("input"))
        problems.append(f"{where}: {dotted(loc)}: {text}")
    return problems
