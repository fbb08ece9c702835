"""A pydantic ValidationError into one line per problem: file, line, key path, what is wrong.

Secrets are redacted here, the one place an input value could reach a message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from afterload.fields import JSON_POINTER_PATTERN, MEMORY_PATTERN, NAME_PATTERN

#: Key paths to the 1-based line each stands on (see :func:`afterload.config.load.line_index`).
LineIndex = dict[tuple[str | int, ...], int]

SECRET_KEYS = ("api_key", "password")

#: What a value failing a pattern should have looked like, by the pattern.
PATTERN_HINTS = {
    JSON_POINTER_PATTERN: "is not a JSON pointer: keys are JSON pointers such as /id "
    "(or /a/b for a nested property)",
    NAME_PATTERN: "is not a valid name (letters, digits, _ . - /, starting with a letter or digit)",
    MEMORY_PATTERN: "is not a memory size (e.g. 512MB, 1GB)",
}


def dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _bound(err: Any, *names: str) -> Any:
    ctx = err.get("ctx") or {}
    for name in names:
        if name in ctx:
            return ctx[name]
    return "?"


def _too_short(err: Any) -> str:
    bound = _bound(err, "min_length")
    return "must not be empty" if bound == 1 else f"must be at least {bound} characters long"


def _pattern(err: Any) -> str:
    hint = PATTERN_HINTS.get(str(_bound(err, "pattern")), "does not have the form this key needs")
    return f"{err['input']!r} {hint}"


#: Pydantic's error types, each worded as the end of a sentence that starts with the key path.
#: Anything not listed falls back to pydantic's text with its "Input should" rephrased.
SENTENCES: dict[str, Callable[[Any], str]] = {
    "missing": lambda err: "is required",
    "extra_forbidden": lambda err: "is not a known key (check its spelling)",
    "literal_error": lambda err: f"{err['input']!r} is not one of {_bound(err, 'expected')}",
    "enum": lambda err: f"{err['input']!r} is not one of {_bound(err, 'expected')}",
    "string_too_long": lambda err: f"must be at most {_bound(err, 'max_length')} characters long",
    "string_too_short": _too_short,
    "string_pattern_mismatch": _pattern,
    "string_type": lambda err: "must be a string (text; quote it if YAML reads it otherwise)",
    "int_type": lambda err: "must be an integer",
    "int_parsing": lambda err: f"{err['input']!r} is not an integer",
    "int_from_float": lambda err: f"{err['input']!r} is not a whole number",
    "float_type": lambda err: "must be a number",
    "float_parsing": lambda err: f"{err['input']!r} is not a number",
    "bool_type": lambda err: "must be true or false",
    "bool_parsing": lambda err: f"{err['input']!r} is not true or false",
    "list_type": lambda err: "must be a list, e.g. [a, b]",
    "tuple_type": lambda err: "must be a list, e.g. [a, b]",
    "dict_type": lambda err: "must be a mapping of keys to values",
    "model_type": lambda err: "must be a mapping of keys to values",
    "model_attributes_type": lambda err: "must be a mapping of keys to values",
    "too_short": lambda err: f"must have at least {_bound(err, 'min_length')} entries",
    "too_long": lambda err: f"must have at most {_bound(err, 'max_length')} entries",
    "greater_than_equal": lambda err: f"must be at least {_bound(err, 'ge')}",
    "greater_than": lambda err: f"must be more than {_bound(err, 'gt')}",
    "less_than_equal": lambda err: f"must be at most {_bound(err, 'le')}",
    "less_than": lambda err: f"must be less than {_bound(err, 'lt')}",
    "value_error": lambda err: str(err["msg"]).removeprefix("Value error, "),
    "assertion_error": lambda err: str(err["msg"]).removeprefix("Assertion failed, "),
}


def _message(err: Any) -> str:
    sentence = SENTENCES.get(err["type"])
    if sentence is not None:
        return sentence(err)
    msg = str(err["msg"])
    if msg.startswith("Input should be "):
        return "must be " + msg.removeprefix("Input should be ")
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


def where(lines: LineIndex, prefix: str, loc: tuple[Any, ...]) -> str:
    """``file:line`` of the key at ``loc`` (or of its nearest parent the index knows)."""
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return f"{prefix}:{lines[loc[:n]]}"
    return prefix


def validation_problems(exc: ValidationError, lines: LineIndex, prefix: str) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        if loc[:2] == ("triggers", "config") and len(loc) > 2 and loc[2] in ("list", "map"):
            loc = loc[:2] + loc[3:]  # the tag of the webhook list's two forms
        text = _redact_secret(loc, _message(err), err.get("input"))
        problems.append(f"{where(lines, prefix, loc)}: {dotted(loc)}: {text}")
    return problems
