"""Fuzzing the config loader: any bytes, any document either load or give clear lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from afterload.config import load_config
from afterload.errors import ConfigError

SECRET = "sk_fuzz_secret_value"

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["30m", "0s", "skip", "replace", "https://x.us1.dbt.com", "${HOME}", "-"]),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "destination",
                    "duckdb",
                    "postgres",
                    "path",
                    "bindings",
                    "source",
                    "table",
                    "key",
                    "dbt_job_trigger",
                    "access_url",
                    "account_id",
                    "job_id",
                    "api_key",
                    "mode",
                    "interval",
                    "cause",
                    "syncSchedule",
                    "syncFrequency",
                    "schema",
                    "delta_updates",
                    "hard_delete",
                    "x",
                ]
            ),
            children,
            max_size=6,
        ),
    ),
    max_leaves=25,
)


def check(path: Path) -> None:
    try:
        load_config(path)
    except ConfigError as exc:
        assert exc.problems
        for line in exc.problems:
            assert line.startswith(str(path)), line
            assert "\n" not in line and "Traceback" not in line
            assert SECRET not in line


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=300))
def test_any_bytes(tmp_path: Path, data: bytes) -> None:
    for suffix in (".yaml", ".json"):
        path = tmp_path / f"c{suffix}"
        path.write_bytes(data)
        check(path)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(documents)
def test_any_document(tmp_path: Path, doc: Any) -> None:
    yaml_path = tmp_path / "c.yaml"
    yaml_path.write_text(yaml.safe_dump(doc))
    check(yaml_path)
    json_path = tmp_path / "c.json"
    json_path.write_text(json.dumps(doc))
    check(json_path)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.dictionaries(
        st.sampled_from(["access_url", "account_id", "job_id", "cause", "mode", "interval", "zzz"]),
        scalars,
    )
)
def test_trigger_blocks_never_echo_the_key(tmp_path: Path, block: dict[str, Any]) -> None:
    block = {**block, "api_key": SECRET}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"dbt_job_trigger": block}))
    check(path)


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    try:
        load_config(path)
    except ConfigError as exc:
        assert "expands to more than" in str(exc)
    else:
        raise AssertionError("the bomb loaded")


def test_deep_nesting_is_a_clear_error(tmp_path: Path) -> None:
    for suffix, text in (
        (".json", '{"a": ' + "[" * 5000 + "]" * 5000 + "}"),
        (".yaml", "a: " + "[" * 5000 + "]" * 5000),
    ):
        path = tmp_path / f"deep{suffix}"
        path.write_text(text)
        check(path)
