"""dbt Cloud run options, typed as dbt's OpenAPI v2 spec types TriggerRunRequestRequest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from afterload.triggers.dbt_cloud.run_options import RunOptions

SPEC = Path("/work/shared/reference/dbt-cloud-openapi-v2.yaml")
FULL: dict[str, Any] = {
    "git_branch": "main",
    "git_sha": "1f2e3d4c",
    "schema_override": "dbt_ci",
    "dbt_version_override": "versionless",
    "threads_override": 8,
    "target_name_override": "prod",
    "generate_docs_override": True,
    "timeout_seconds_override": 0,
    "steps_override": ["dbt build --select source:raw.orders+", "dbt test"],
}


def test_every_option_is_passed_verbatim_beside_the_cause() -> None:
    options = RunOptions.model_validate(FULL)
    assert options.body("nightly") == {"cause": "nightly", **FULL}
    assert RunOptions().body("x") == {"cause": "x"} and RunOptions().empty


@pytest.mark.skipif(not SPEC.exists(), reason="the shared reference spec is not here")
def test_the_options_are_the_specs_and_typed_as_it_types_them() -> None:
    spec = yaml.safe_load(SPEC.read_text())
    props = spec["components"]["schemas"]["TriggerRunRequestRequest"]["properties"]
    wanted = set(RunOptions.model_fields)
    assert wanted <= set(props)
    kinds = {"string": str, "integer": int, "boolean": bool, "array": list}
    for name in wanted:
        assert isinstance(FULL[name], kinds[props[name]["type"]]), name
        schema = RunOptions.model_json_schema()["properties"][name]["anyOf"][0]
        assert schema["type"] == props[name]["type"], name
        if props[name].get("minLength"):
            assert schema["minLength"] == props[name]["minLength"], name


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"threads_override": True}, "True is not an integer"),
        ({"threads_override": 2.5}, "2.5 is not an integer"),
        ({"threads_override": 0}, "greater than or equal to 1"),
        ({"timeout_seconds_override": -1}, "greater than or equal to 0"),
        ({"generate_docs_override": "yes"}, "valid boolean"),
        ({"git_branch": ""}, "at least 1 character"),
        ({"schema_override": 5}, "valid string"),
        ({"steps_override": []}, "at least 1 item"),
        ({"steps_override": [""]}, "at least 1 character"),
        ({"steps_override": "dbt run"}, "valid list"),
        ({"steps_override": ["dbt run", "rm -rf /"]}, "step 2 is not a dbt command"),
        ({"cause": "x"}, "Extra inputs are not permitted"),
        ({"azure_pull_request_id": 1}, "Extra inputs are not permitted"),
    ],
)
def test_wrong_types_are_refused_naming_the_key(data: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as info:
        RunOptions.model_validate(data)
    (error,) = info.value.errors()
    assert error["loc"][0] == next(iter(data))
    assert words in error["msg"]


def test_digits_from_environment_interpolation_are_integers() -> None:
    assert RunOptions.model_validate({"threads_override": "4"}).threads_override == 4
    with pytest.raises(ValidationError):
        RunOptions.model_validate({"threads_override": "four"})


@given(st.one_of(st.integers(), st.text(), st.booleans(), st.floats(), st.none()))
def test_integers_accept_only_integers(value: object) -> None:
    try:
        got = RunOptions.model_validate({"timeout_seconds_override": value})
    except ValidationError:
        return
    if value is None:
        assert got.timeout_seconds_override is None
        return
    assert not isinstance(value, bool | float)
    assert isinstance(got.timeout_seconds_override, int)
    assert 0 <= got.timeout_seconds_override < 2**31
