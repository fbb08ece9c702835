"""Payload templates: Estuary's documented examples render to the JSON they describe, strict
mode refuses unknown names, and quoted variables stay valid JSON whatever the data holds."""

# ruff: noqa: E501  (Estuary's example templates are kept line for line)

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from afterload.triggers.webhook.template import PLACEHOLDER, PayloadTemplate, TemplateError
from afterload.triggers.webhook.window import TriggerVariables, Window

# The variables of a two-table window, as Estuary's runtime would compute them.
VARS = TriggerVariables(
    materialization_name="acmeCo/example/database-views",
    collection_names=("acmeCo/example/collection", "acmeCo/example/other"),
    connector_image="ghcr.io/estuary/materialize-postgres:dev",
    flow_published_at_min="2024-01-15T08:30:00Z",
    flow_published_at_max="2024-01-15T08:31:00Z",
    run_id="2024-01-15T08:30:00.000Z",
)

# The payloadTemplate values of Estuary's "Materialization Triggers" page
# (site/docs/concepts/materialization/materialization-triggers.md in estuary/flow), each with
# the JSON the page says it sends.
ESTUARY_EXAMPLES = [
    pytest.param(
        """{
  "materialization": "{{materialization_name}}",
  "collections": [{{#each collection_names}}"{{this}}"{{#unless @last}}, {{/unless}}{{/each}}],
  "publishedAtMin": "{{flow_published_at_min}}",
  "publishedAtMax": "{{flow_published_at_max}}",
  "runId": "{{run_id}}"
}
""",
        {},
        {
            "materialization": "acmeCo/example/database-views",
            "collections": ["acmeCo/example/collection", "acmeCo/example/other"],
            "publishedAtMin": "2024-01-15T08:30:00Z",
            "publishedAtMax": "2024-01-15T08:31:00Z",
            "runId": "2024-01-15T08:30:00.000Z",
        },
        id="specification",
    ),
    pytest.param(
        """{
  "text": "Materialization {{materialization_name}} committed new data from {{#each collection_names}}{{this}}{{#unless @last}}, {{/unless}}{{/each}}"
}
""",
        {},
        {
            "text": "Materialization acmeCo/example/database-views committed new data from "
            "acmeCo/example/collection, acmeCo/example/other"
        },
        id="slack",
    ),
    pytest.param(
        """{
  "cause": "Triggered by Estuary materialization {{materialization_name}}",
  "git_sha": "HEAD"
}
""",
        {"Authorization": "Token my-dbt-api-token"},
        {
            "cause": "Triggered by Estuary materialization acmeCo/example/database-views",
            "git_sha": "HEAD",
        },
        id="dbt-cloud",
    ),
    pytest.param(
        '{\n  "ref": "main"\n}\n',
        {"Authorization": "Bearer ghp_your_personal_access_token"},
        {"ref": "main"},
        id="github-actions",
    ),
    pytest.param(
        """{
  "apiKey": "{{headers.X-Api-Key}}",
  "materialization": "{{materialization_name}}",
  "runId": "{{run_id}}"
}
""",
        {"X-Api-Key": "sk-secret-key-value"},
        {
            "apiKey": "sk-secret-key-value",
            "materialization": "acmeCo/example/database-views",
            "runId": "2024-01-15T08:30:00.000Z",
        },
        id="secret-header-in-body",
    ),
    pytest.param(
        '{"text": "New data from {{materialization_name}}"}\n',
        {},
        {"text": "New data from acmeCo/example/database-views"},
        id="multiple-slack",
    ),
    pytest.param(
        '{"cause": "Estuary trigger {{run_id}}"}\n',
        {"Authorization": "Token dbt-token"},
        {"cause": "Estuary trigger 2024-01-15T08:30:00.000Z"},
        id="multiple-dbt",
    ),
]


@pytest.mark.parametrize(("source", "headers", "expected"), ESTUARY_EXAMPLES)
def test_estuary_examples_render_the_json_they_describe(
    source: str, headers: dict[str, str], expected: dict[str, object]
) -> None:
    template = PayloadTemplate(source, headers)
    template.check(expect_json=True)
    assert json.loads(template.render(VARS, headers)) == expected


def test_the_runtime_template_renders_estuarys_snapshot() -> None:
    """Estuary's runtime test renders this template with its placeholder variables; its
    snapshot (runtime__materialize__triggers__test__rendered-template.snap) is the JSON below."""
    source = """{
  "event": "materialization_transaction_completed",
  "connector": "{{connector_image}}",
  "collections": [{{#each collection_names}}"{{this}}"{{#unless @last}}, {{/unless}}{{/each}}],
  "materialization": "{{materialization_name}}",
  "flow_published_at_min": "{{flow_published_at_min}}",
  "flow_published_at_max": "{{flow_published_at_max}}",
  "run_id": "{{run_id}}",
  "auth": "{{headers.Authorization}}"
}"""
    headers = {"Authorization": "Bearer my-secret"}
    rendered = PayloadTemplate(source, headers).render(PLACEHOLDER, headers)
    assert json.loads(rendered) == {
        "auth": "Bearer my-secret",
        "collections": ["acmeCo/example/collection"],
        "connector": "ghcr.io/estuary/materialize-example:v1",
        "event": "materialization_transaction_completed",
        "flow_published_at_max": "2024-01-01T00:01:00Z",
        "flow_published_at_min": "2024-01-01T00:00:00Z",
        "materialization": "acmeCo/example/materialization",
        "run_id": "2024-01-01T00:00:00.000Z",
    }


def test_window_variables_use_estuarys_timestamp_forms() -> None:
    """Published times as RFC 3339 with Z (fractions only when present), run_id always with
    milliseconds — the forms of Estuary's trigger-variables snapshot."""
    w = Window.of_commit(
        3,
        opened_at=datetime(2024, 6, 15, 12, 30, tzinfo=UTC),
        published_min=datetime(1970, 1, 1, 0, 8, 20, tzinfo=UTC),
        published_max=datetime(1970, 1, 1, 1, 6, 40, 250_000, tzinfo=UTC),
        collections=["b", "a", "b"],
    )
    v = w.variables(materialization_name="m", connector_image="i")
    assert v.flow_published_at_min == "1970-01-01T00:08:20Z"
    assert v.flow_published_at_max == "1970-01-01T01:06:40.250Z"
    assert v.run_id == "2024-06-15T12:30:00.000Z"
    assert v.collection_names == ("a", "b")


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("{{materialisation_name}}", "{{materialisation_name}}, which is not a variable"),
        ("{{#each colection_names}}x{{/each}}", "{{colection_names}}, which is not a variable"),
        ("{{#if nope}}x{{/if}}", "{{nope}}, which is not a variable"),
        ("{{headers.X-Missing}}", "no header 'X-Missing'"),
        ("{{#each collection_names}}", "is not a valid Handlebars template"),
        ("{{", "is not a valid Handlebars template"),
        ("{{json run_id}}", "cannot be rendered"),
        ('{"a": {{run_id}}}', "does not render to JSON"),
    ],
)
def test_bad_templates_are_refused_with_one_clause(source: str, words: str) -> None:
    with pytest.raises(TemplateError) as info:
        PayloadTemplate(source, {"Authorization": "secret-value"}).check(expect_json=True)
    message = str(info.value)
    assert words in message
    assert "\n" not in message and "secret-value" not in message


def test_strict_mode_at_render_time() -> None:
    """A path that exists in the placeholder but not in real data still fails loudly."""
    template = PayloadTemplate("{{collection_names.[1]}}")
    one = VARS.model_copy(update={"collection_names": ("only",)})
    with pytest.raises(TemplateError, match="cannot be rendered"):
        template.render(one, {})


hostile = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]) | st.sampled_from('"\\\0'),
    max_size=40,
)
QUOTED = """{"m": "{{materialization_name}}", "c": [{{#each collection_names}}"{{this}}"{{#unless @last}}, {{/unless}}{{/each}}], "i": "{{connector_image}}", "lo": "{{flow_published_at_min}}", "hi": "{{flow_published_at_max}}", "r": "{{run_id}}", "k": "{{headers.X-Key}}"}"""


@settings(max_examples=300, deadline=None)
@given(
    name=hostile,
    collections=st.lists(hostile, min_size=1, max_size=5),
    image=hostile,
    stamps=st.tuples(hostile, hostile, hostile),
    key=hostile,
)
def test_quoted_variables_render_valid_json_whatever_the_values(
    name: str, collections: list[str], image: str, stamps: tuple[str, str, str], key: str
) -> None:
    variables = TriggerVariables(
        materialization_name=name,
        collection_names=tuple(collections),
        connector_image=image,
        flow_published_at_min=stamps[0],
        flow_published_at_max=stamps[1],
        run_id=stamps[2],
    )
    rendered = PayloadTemplate(QUOTED, ["X-Key"]).render(variables, {"X-Key": key})
    assert json.loads(rendered) == {
        "m": name,
        "c": collections,
        "i": image,
        "lo": stamps[0],
        "hi": stamps[1],
        "r": stamps[2],
        "k": key,
    }
    rendered.encode("utf-8")  # sendable as is


def test_a_lone_surrogate_is_escaped_not_fatal() -> None:
    odd = VARS.model_copy(update={"materialization_name": "a\ud800b"})
    rendered = PayloadTemplate('{"m": "{{materialization_name}}"}').render(odd, {})
    rendered.encode("utf-8")
    assert json.loads(rendered) == {"m": "a\ud800b"}
