"""The dbt_core_trigger block: defaults, paths beside the config file, placeholders in vars."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from afterload.triggers.dbt_core.config import KNOWN_NAMES, DbtCoreTrigger, FireContext

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def load(block: dict[str, Any], config_dir: Path | None = Path("/etc/afterload")) -> DbtCoreTrigger:
    return DbtCoreTrigger.model_validate(block, context={"config_dir": config_dir})


def problems(block: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        load(block)
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in info.value.errors()]


def test_defaults_and_paths_relative_to_the_config_file() -> None:
    s = load({"project_dir": "transform/"})
    assert s.project_dir == Path("/etc/afterload/transform")
    assert s.profiles_dir == s.project_dir == s.profiles
    assert (s.command, s.mode, s.target, s.select) == ("build", "skip", None, None)
    assert s.interval == timedelta(minutes=30)
    assert s.timeout == timedelta(hours=1)
    assert load({"project_dir": "/abs/p", "profiles_dir": "prof"}).profiles == Path(
        "/etc/afterload/prof"
    )


def test_the_issue_block_loads_as_written() -> None:
    s = load(
        {
            "project_dir": "transform/",
            "profiles_dir": "transform/",
            "target": "dev",
            "command": "build",
            "select": "source:shop+",
            "vars": {"since": "{{ flow_published_at_min }}"},
            "mode": "skip",
            "interval": "30m",
            "timeout": "1h",
        }
    )
    assert s.rendered_vars(FireContext(), NOW) == {"since": "1970-01-01T00:00:00+00:00"}


@pytest.mark.parametrize(
    ("block", "key", "words"),
    [
        ({}, "project_dir", "Field required"),
        ({"project_dir": "p", "command": "deploy"}, "command", "'build'"),
        ({"project_dir": "p", "mode": "queue"}, "mode", "'skip'"),
        ({"project_dir": "p", "interval": "30 minutes"}, "interval", "is not a duration"),
        ({"project_dir": "p", "timeout": "0s"}, "timeout", "more than 0s"),
        ({"project_dir": "p", "vars": {"a": "{{ since }}"}}, "vars", "unknown placeholder"),
        ({"project_dir": "p", "vars": {"a": ["{{ nope }}"]}}, "vars", "{{ nope }}"),
        ({"project_dir": "p", "extra": 1}, "extra", "not permitted"),
    ],
)
def test_each_mistake_names_its_key(block: dict[str, Any], key: str, words: str) -> None:
    found = problems(block)
    assert len(found) == 1
    loc, msg = found[0]
    assert loc == key
    assert words in msg
    assert "\n" not in msg


def test_placeholders_render_from_the_fire() -> None:
    s = load(
        {
            "project_dir": "p",
            "vars": {
                "since": "{{flow_published_at_min}}",
                "until": "{{  flow_published_at_max }}",
                "what": ["{{ materialization_name }}: {{ collection_names }}"],
                "n": 3,
                "nested": {"keep": "{{ var('x') }} {% raw %}"},
            },
        }
    )
    ctx = FireContext(
        materialization_name="shop",
        flow_published_at_min=datetime(2026, 12, 1, 10, 0, tzinfo=UTC),
        collection_names=("orders", "customers"),
    )
    assert s.rendered_vars(ctx, NOW) == {
        "since": "2026-12-01T10:00:00+00:00",
        "until": "2026-12-02T12:00:00+00:00",
        "what": ["shop: orders,customers"],
        "n": 3,
        "nested": {"keep": "{{ var('x') }} {% raw %}"},
    }


@given(st.text(), st.sampled_from(KNOWN_NAMES))
def test_rendering_replaces_placeholders_and_keeps_other_text(text: str, name: str) -> None:
    if "{{" in text or "}}" in text:
        return  # text that is itself a placeholder is covered above
    s = load({"project_dir": "p", "vars": {"v": f"{text}{{{{ {name} }}}}{text}"}})
    out = s.rendered_vars(FireContext(materialization_name="m\x00ü"), NOW)["v"]
    value = FireContext(materialization_name="m\x00ü").values(NOW)[name]
    assert out == f"{text}{value}{text}"
