"""The payload template: Handlebars in strict mode over Estuary's variables.

Estuary renders with handlebars-rust in strict mode without HTML escaping. Here the engine is
``dotpromptz-handlebars`` (Google's pure-Python Handlebars, following Handlebars.js 4.7), in
strict mode without HTML escaping, and two rules close the gaps a typed config can close:

- A template that does not compile, or that names anything but Estuary's variables (also in
  ``{{#if}}``/``{{#each}}``, which strict mode alone lets pass) or a header the trigger does not
  set, is refused when the config is loaded, by rendering it once with placeholder values.
- Each value is escaped for the inside of a JSON string (``"``, ``\\``, control characters,
  NUL). A template that puts its variables between quotes, as all of Estuary's examples do,
  renders valid JSON whatever the data holds; values without such characters render exactly
  as in Estuary.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from afterload.triggers.webhook.window import TriggerVariables

#: Estuary's template variables; ``headers`` holds the trigger's own header values.
VARIABLES = (
    "materialization_name",
    "collection_names",
    "connector_image",
    "flow_published_at_min",
    "flow_published_at_max",
    "run_id",
    "headers",
)

#: The values a template is checked with at config load (Estuary's placeholder values).
PLACEHOLDER = TriggerVariables(
    materialization_name="acmeCo/example/materialization",
    collection_names=("acmeCo/example/collection",),
    connector_image="ghcr.io/estuary/materialize-example:v1",
    flow_published_at_min="2024-01-01T00:00:00Z",
    flow_published_at_max="2024-01-01T00:01:00Z",
    run_id="2024-01-01T00:00:00.000Z",
)

_SEVERAL = ("acmeCo/example/collection", "acmeCo/example/other")


class TemplateError(ValueError):
    """A template that cannot be compiled or rendered; the message is one clause, no values."""


def json_text(value: str) -> str:
    """``value`` escaped for the inside of a JSON string (without the quotes)."""
    try:
        value.encode("utf-8")
        encoded = json.dumps(value, ensure_ascii=False)
    except UnicodeEncodeError:  # a lone surrogate: escape it rather than fail to send
        encoded = json.dumps(value, ensure_ascii=True)
    return encoded[1:-1]


class _Recording(Mapping[str, Any]):
    """A mapping that notes each name looked up and not found (for the check at load)."""

    def __init__(self, data: Mapping[str, Any], misses: set[str], prefix: str = "") -> None:
        self._data = data
        self._misses = misses
        self._prefix = prefix

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        found = key in self._data
        if not found:
            self._misses.add(f"{self._prefix}{key}")
        return found


def _context(variables: TriggerVariables, headers: Mapping[str, str]) -> dict[str, Any]:
    return {
        "materialization_name": json_text(variables.materialization_name),
        "collection_names": [json_text(name) for name in variables.collection_names],
        "connector_image": json_text(variables.connector_image),
        "flow_published_at_min": json_text(variables.flow_published_at_min),
        "flow_published_at_max": json_text(variables.flow_published_at_max),
        "run_id": json_text(variables.run_id),
        "headers": {name: json_text(value) for name, value in headers.items()},
    }


def _reason(exc: Exception) -> str:
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    return text[:1].lower() + text[1:]


class PayloadTemplate:
    """A compiled payload template; :meth:`render` never shows header values in its errors."""

    def __init__(self, source: str, header_names: Iterable[str] = ()) -> None:
        self.source = source
        self.header_names = tuple(header_names)
        # The engine loads with the first template: a config without webhooks never needs it.
        from dotpromptz_handlebars import EscapeFunction, Handlebars

        engine = Handlebars(strict=True, escape_fn=EscapeFunction.NO_ESCAPE)
        try:
            self._render = engine.compile(source)
        except (ValueError, RecursionError) as exc:
            raise TemplateError(f"is not a valid Handlebars template ({_reason(exc)})") from None

    def check(self, *, expect_json: bool) -> str:
        """Render once with placeholders; refuse unknown names and, if asked, non-JSON output."""
        misses: set[str] = set()
        placeholders = {name: f"(header {name})" for name in self.header_names}
        context = _context(PLACEHOLDER, placeholders)
        context["headers"] = _Recording(context["headers"], misses, "headers.")
        try:
            rendered = self._render_context(_Recording(context, misses))
        except TemplateError:
            if not misses:
                raise
        if misses:
            name = sorted(misses)[0]
            if name.startswith("headers."):
                raise TemplateError(
                    f"uses {{{{{name}}}}}, but the trigger sets no header {name[8:]!r}"
                )
            known = ", ".join(VARIABLES)
            raise TemplateError(f"uses {{{{{name}}}}}, which is not a variable (known: {known})")
        if expect_json:
            try:
                json.loads(rendered)
            except ValueError as exc:
                raise TemplateError(f"does not render to JSON ({_reason(exc)})") from None
            # A list (``{{#each collection_names}}``) may be JSON with one item and not with
            # two, as a missing comma between items is.
            several = PLACEHOLDER.model_copy(update={"collection_names": _SEVERAL})
            try:
                json.loads(self._render_context(_context(several, placeholders)))
            except ValueError as exc:
                raise TemplateError(
                    f"does not render to JSON for a window of two collections ({_reason(exc)})"
                ) from None
        return rendered

    def render(self, variables: TriggerVariables, headers: Mapping[str, str]) -> str:
        """The request body for one window."""
        return self._render_context(_context(variables, headers))

    def _render_context(self, context: Mapping[str, Any]) -> str:
        from dotpromptz_handlebars import StrictModeError

        try:
            return str(self._render(context))
        except StrictModeError as exc:
            raise TemplateError(f"cannot be rendered ({exc.path} is not defined)") from None
        except (ValueError, RecursionError, TypeError) as exc:
            raise TemplateError(f"cannot be rendered ({_reason(exc)})") from None
