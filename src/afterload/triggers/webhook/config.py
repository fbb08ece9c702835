"""The ``triggers:`` block, with the keys and meaning of Estuary's Materialization Triggers.

A block pasted from an Estuary materialization spec loads unchanged: ``interval`` (optional;
unset delivers after every commit), and ``config`` — Estuary's documented list, or the
name-keyed map its newer runtime writes — of ``{url, method, headers, payloadTemplate,
timeout, maxAttempts}``. Header values are secrets (``SecretStr``): they reach the request
and the template context, never a log line, an error or a repr.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    field_validator,
    model_validator,
)

from afterload.durations import format_duration
from afterload.fields import Duration, secret_url
from afterload.triggers.webhook.template import PayloadTemplate, TemplateError

#: RFC 9110 field names (a "token").
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_TRIGGER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class WebhookTrigger(_Strict):
    """One webhook: Estuary's ``triggers.config[*]``."""

    url: str = Field(
        description="URL of the webhook endpoint; https:// (http:// only for loopback hosts).",
        json_schema_extra={"format": "uri"},
    )
    method: Literal["POST", "PUT", "PATCH"] = Field(
        default="POST", description="HTTP method of the request."
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="HTTP headers of the request. The values are secrets; a template can "
        "reference them as {{headers.Name}}.",
        json_schema_extra={"additionalProperties": {"type": "string", "secret": True}},
    )
    payloadTemplate: str = Field(
        description="Handlebars template (strict mode) that renders to the JSON request body."
    )
    timeout: Duration = Field(
        default=timedelta(seconds=30),
        description="Request timeout of each delivery attempt.",
        json_schema_extra={"default": "30s"},
    )
    maxAttempts: int = Field(
        default=3,
        ge=1,
        le=1000,
        strict=True,
        description="Delivery attempts, the first included, before a delivery has failed.",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        value = value.strip()
        secret_url(value, "the headers")
        return value

    @field_validator("headers", mode="before")
    @classmethod
    def _check_headers(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value  # pydantic says it is not a mapping
        seen: set[str] = set()
        for name, secret in value.items():
            if not isinstance(name, str) or not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not an HTTP header name")
            if name.lower() in seen:
                raise ValueError(f"{name!r} is given twice (header names ignore case)")
            seen.add(name.lower())
            raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
            if not isinstance(raw, str):
                raise ValueError(f"the value of {name!r} must be a string")
            if any(c in raw for c in "\r\n\0"):
                raise ValueError(f"the value of {name!r} holds a line break or NUL")
        return value

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0) or value > timedelta(hours=1):
            raise ValueError(f"{format_duration(value)} is not within 0s (excluded) and 1h")
        return value

    @model_validator(mode="after")
    def _check_template(self) -> WebhookTrigger:
        try:
            self.template().check(expect_json=self.sends_json)
        except TemplateError as exc:
            raise ValueError(f"payloadTemplate {exc}") from None
        return self

    @property
    def sends_json(self) -> bool:
        """Estuary sends ``application/json`` unless a Content-Type header says otherwise."""
        for name, value in self.headers.items():
            if name.lower() == "content-type":
                return "json" in value.get_secret_value().lower()
        return True

    def template(self) -> PayloadTemplate:
        return PayloadTemplate(self.payloadTemplate, self.headers)

    def header_values(self) -> dict[str, str]:
        """The headers in clear, for the request and the template only."""
        return {name: value.get_secret_value() for name, value in self.headers.items()}

    def url_secrets(self) -> list[str]:
        """The URL's path and query, hidden wherever a receiver echoes them."""
        parts = urlsplit(self.url)
        return [p for p in (parts.path, parts.query) if p.strip("/")]

    def endpoint(self) -> str:
        """The URL without path, query or credentials: safe for log lines (a Slack URL's
        path is its secret)."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}"


def _shape(value: Any) -> str:
    return "map" if isinstance(value, dict) else "list"


#: Estuary's two forms. The tag keeps errors to the form given; it shows in an error's
#: location as ``list`` or ``map`` (the loader drops it).
TriggerList = Annotated[
    Annotated[list[WebhookTrigger], Tag("list")] | Annotated[dict[str, WebhookTrigger], Tag("map")],
    Discriminator(_shape),
]


class WebhookTriggers(_Strict):
    """Estuary's ``triggers`` block: webhooks fired after commits that stored documents."""

    interval: Duration | None = Field(
        default=None,
        description="At most one delivery per interval, shared by all webhooks; a burst of "
        "commits collapses into one delivery covering the span. Unset: after every commit.",
        json_schema_extra={"examples": ["30m", "1h", "90s"]},
    )
    config: TriggerList = Field(
        description="The webhooks: a list (Estuary's documented form) or a map from a name "
        "to a webhook (the form of Estuary's newer runtime)."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_sops(cls, data: Any) -> Any:
        if isinstance(data, dict) and "sops" in data:
            raise ValueError(
                "holds an encrypted (SOPS) block; paste the decrypted values, with secrets "
                "as ${ENV} references"
            )
        return data

    @field_validator("config")
    @classmethod
    def _not_empty(
        cls, value: list[WebhookTrigger] | dict[str, WebhookTrigger]
    ) -> list[WebhookTrigger] | dict[str, WebhookTrigger]:
        if not value:
            raise ValueError("must list at least one webhook")
        if isinstance(value, dict):
            for name in value:
                if not _TRIGGER_NAME.match(name):
                    raise ValueError(
                        f"{name!r} is not a trigger name (letters, digits, '_', '.', '-')"
                    )
        return value

    def named(self) -> dict[str, WebhookTrigger]:
        """Each webhook by name; a list's entries are ``trigger0``, ``trigger1``… as Estuary
        names them."""
        if isinstance(self.config, dict):
            return dict(self.config)
        return {f"trigger{i}": trigger for i, trigger in enumerate(self.config)}
