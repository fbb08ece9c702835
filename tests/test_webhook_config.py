"""The ``triggers:`` block: Estuary's blocks load as pasted; mistakes are one sentence naming
the key; header values never show."""

# ruff: noqa: E501  (Estuary's example templates are kept line for line)

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from afterload.triggers.webhook.config import WebhookTriggers

# The block of Estuary's specification example, as its docs page shows it.
ESTUARY_BLOCK = """
interval: 30m
config:
  - url: "https://example.com/webhook"
    method: POST
    headers:
      Authorization: "Bearer my-secret-token"
    payloadTemplate: |
      {
        "materialization": "{{materialization_name}}",
        "collections": [{{#each collection_names}}"{{this}}"{{#unless @last}}, {{/unless}}{{/each}}],
        "publishedAtMin": "{{flow_published_at_min}}",
        "publishedAtMax": "{{flow_published_at_max}}",
        "runId": "{{run_id}}"
      }
    timeout: 30s
    maxAttempts: 3
"""

SECRET = "Bearer my-secret-token"


def load(data: dict[str, Any] | str) -> WebhookTriggers:
    return WebhookTriggers.model_validate(yaml.safe_load(data) if isinstance(data, str) else data)


def hook(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"url": "https://example.com/hook", "payloadTemplate": "{}"}
    base.update(overrides)
    return base


def errors(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        load(data)
    out = []
    for e in info.value.errors():
        loc = ".".join(str(p) for p in e["loc"] if p not in ("list", "map"))
        out.append(f"{loc}: {e['msg'].removeprefix('Value error, ')}")
    text = "\n".join(out)
    assert SECRET not in text and "s3cr3t" not in text
    return out


def test_estuarys_documented_block_loads_as_pasted() -> None:
    t = load(ESTUARY_BLOCK)
    assert t.interval == timedelta(minutes=30)
    (name, hook_), *_ = t.named().items()
    assert name == "trigger0"
    assert hook_.method == "POST"
    assert hook_.timeout == timedelta(seconds=30)
    assert hook_.maxAttempts == 3
    assert hook_.header_values() == {"Authorization": SECRET}


def test_defaults_are_estuarys() -> None:
    t = load({"config": [hook()]})
    h = t.named()["trigger0"]
    assert t.interval is None  # unset: a delivery after every commit
    assert (h.method, h.timeout, h.maxAttempts, h.headers) == ("POST", timedelta(seconds=30), 3, {})


def test_the_name_keyed_form_of_estuarys_newer_runtime() -> None:
    t = load({"config": {"slack": hook(), "dbt": hook(method="PATCH")}})
    assert list(t.named()) == ["slack", "dbt"]
    assert t.named()["dbt"].method == "PATCH"


def test_header_values_never_show() -> None:
    t = load({"config": [hook(headers={"Authorization": SECRET})]})
    for text in (repr(t), str(t), t.model_dump_json(), repr(t.named()["trigger0"])):
        assert SECRET not in text


def test_loopback_may_use_http() -> None:
    for host in ("127.0.0.1:8080", "localhost", "[::1]:9"):
        load({"config": [hook(url=f"http://{host}/x")]})


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            {"url": "http://example.com/hook"},
            "config.0.url: uses http://, which would send the headers in "
            "clear; use https:// (http:// is allowed only for loopback hosts)",
        ),
        ({"url": "ftp://example.com"}, "url: is not an https:// URL"),
        ({"url": "https://example.com:99999/"}, "url: is not a URL (is its port"),
        ({"url": "https://bob:pw@example.com/"}, "url: must not carry a user or password"),
        ({"method": "GET"}, "method: Input should be 'POST', 'PUT' or 'PATCH'"),
        ({"timeout": "0s"}, "timeout: 0s is not within 0s (excluded) and 1h"),
        ({"timeout": "30 seconds"}, "timeout: '30 seconds' is not a duration (e.g. 30m, 1h, 90s)"),
        ({"maxAttempts": 0}, "maxAttempts: Input should be greater than or equal to 1"),
        ({"maxAttempts": "3"}, "maxAttempts: Input should be a valid integer"),
        ({"payloadTemplate": None}, "payloadTemplate: Input should be a valid string"),
        (
            {"payloadTemplate": '{"a": "{{runid}}"}'},
            "payloadTemplate uses {{runid}}, which is not a variable",
        ),
        (
            {"payloadTemplate": '{"a": "{{headers.X-Token}}"}'},
            "payloadTemplate uses {{headers.X-Token}}, but the trigger sets no header 'X-Token'",
        ),
        ({"payloadTemplate": "{{#each"}, "payloadTemplate is not a valid Handlebars template"),
        ({"payloadTemplate": "not json"}, "payloadTemplate does not render to JSON"),
        (  # JSON with one collection, not with two: check rendered one only
            {"payloadTemplate": '{"t": [{{#each collection_names}}"{{this}}"{{/each}}]}'},
            "payloadTemplate does not render to JSON for a window of two collections",
        ),
        ({"headers": {"Bad Name": "s3cr3t"}}, "headers: 'Bad Name' is not an HTTP header name"),
        ({"headers": {"X-A": "s3cr3t\r\nX-B: 1"}}, "the value of 'X-A' holds a line break or NUL"),
        ({"headers": {"X-A": "s3cr3t", "x-a": "s3cr3t"}}, "'x-a' is given twice"),
        ({"headers": {"X-A": 5}}, "the value of 'X-A' must be a string"),
        ({"payload_template": "{}"}, "payload_template: Extra inputs are not permitted"),
    ],
)
def test_mistakes_are_one_sentence_naming_the_key(override: dict[str, Any], expected: str) -> None:
    found = errors({"config": [hook(**override)]})
    assert any(expected in line for line in found), found
    assert all("\n" not in line for line in found)


def test_a_non_json_content_type_allows_any_body() -> None:
    load({"config": [hook(payloadTemplate="ref=main", headers={"Content-Type": "text/plain"})]})


def test_block_level_mistakes() -> None:
    assert any("must list at least one webhook" in e for e in errors({"config": []}))
    assert any("config: Field required" in e for e in errors({"interval": "5m"}))
    assert any("is not a duration" in e for e in errors({"interval": "5x", "config": [hook()]}))
    assert any("encrypted (SOPS)" in e for e in errors({"config": [hook()], "sops": {"mac": "x"}}))
    assert any("is not a trigger name" in e for e in errors({"config": {"bad name": hook()}}))
