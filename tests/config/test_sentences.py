"""Config errors a new user meets end in one plain sentence (issue 9, "one sentence").

Each test here failed before its fix: an empty API key passed, Estuary's cleared block was an
error, ``emea`` went to a us1 host, keys said ``'id' is not valid here`` and pydantic's own
phrasing (``Input should be a valid list``) reached the user; a key written twice was silent.
"""

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from afterload.config import load_config, parse_config
from afterload.errors import ConfigError

GOOD = """\
dbt_job_trigger:
  access_url: https://ab123.us1.dbt.com/
  account_id: 12
  job_id: "34"
  api_key: dbtc_secret_value
"""


def problems(text: str, name: str = "c.yaml") -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, Path(name))
    return info.value.problems


# -- api_key --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["''", '""', "'   '"])
def test_empty_api_key_is_a_config_error(value: str) -> None:
    (line,) = problems(GOOD.replace("dbtc_secret_value", value))
    assert line.startswith("c.yaml:5: dbt_job_trigger.api_key: is empty")


def test_api_key_from_an_empty_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMPTY_DBT_KEY", "")
    (line,) = problems(GOOD.replace("dbtc_secret_value", "${EMPTY_DBT_KEY}"))
    assert line.startswith("c.yaml:5: dbt_job_trigger.api_key: is empty")


def test_api_key_that_cannot_be_a_header_is_a_config_error() -> None:
    (line,) = problems(GOOD.replace("dbtc_secret_value", '"abc\\ndef-secret"'))
    assert line.startswith("c.yaml:5: dbt_job_trigger.api_key:")
    assert "def-secret" not in line


# -- Estuary's cleared block, empty cause, interval 0 ----------------------------------------

CLEARED = """\
dbt_job_trigger:
  access_url: ""
  account_id: ""
  job_id: ""
  api_key: ""
  cause: ""
  mode: ""
  interval: ""
"""


def test_cleared_block_means_no_trigger() -> None:
    config = parse_config(CLEARED, Path("c.yaml"))
    assert config.dbt_job_trigger is None
    assert config.trigger_cleared


def test_cleared_block_is_said_at_info(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from afterload.pipeline import trigger_actions

    path = tmp_path / "c.yaml"
    path.write_text(CLEARED)
    with caplog.at_level(logging.INFO, logger="afterload"):
        assert trigger_actions(load_config(path)) == []
    assert any("cleared" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)


def test_half_cleared_block_is_still_an_error() -> None:
    lines = problems(CLEARED.replace('job_id: ""', "job_id: 5"))
    assert any("dbt_job_trigger.api_key: is empty" in line for line in lines)


def test_empty_cause_is_the_default() -> None:
    block = parse_config(GOOD + "  cause: ''\n", Path("c.yaml")).dbt_job_trigger
    assert block is not None and block.cause == "Estuary Flow"


def test_interval_zero_as_a_number() -> None:
    block = parse_config(GOOD + "  interval: 0\n", Path("c.yaml")).dbt_job_trigger
    assert block is not None and block.interval == timedelta(0)
    (line,) = problems(GOOD + "  interval: 30\n")
    assert "dbt_job_trigger.interval: 30 is not a duration" in line and "unit" in line


# -- account_prefix: the host Estuary's connector uses -------------------------------------


@pytest.mark.parametrize(
    ("prefix", "url"),
    [
        ("ab123", "https://ab123.us1.dbt.com"),
        ("emea", "https://emea.dbt.com"),
        ("au", "https://au.dbt.com"),
        ("cloud", "https://cloud.us1.dbt.com"),
    ],
)
def test_account_prefix_hosts(prefix: str, url: str) -> None:
    text = GOOD.replace("access_url: https://ab123.us1.dbt.com/", f"account_prefix: {prefix}")
    block = parse_config(text, Path("c.yaml")).dbt_job_trigger
    assert block is not None and block.base_url == url


# -- plain sentences instead of pydantic's phrasing ----------------------------------------

BINDING = "bindings:\n  - source: d/*.jsonl\n    table: t\n    key: [/id]\n"


def test_key_that_is_not_a_pointer() -> None:
    (line,) = problems(BINDING.replace("[/id]", "[id]"))
    assert line.startswith("c.yaml:4: bindings[0].key[0]: 'id' is not a JSON pointer")
    assert "such as /id" in line


@pytest.mark.parametrize(
    ("text", "where", "sentence"),
    [
        (BINDING.replace("[/id]", "/id"), "bindings[0].key", "must be a list"),
        (BINDING.replace("table: t", "table: ''"), "bindings[0].table", "must not be empty"),
        ("bindings: {a: 1}\n", "bindings", "must be a list"),
        ("destination: 5\n", "destination", "must be a mapping"),
        (BINDING + "    hard_delete: maybe\n", "bindings[0].hard_delete", "true or false"),
        ("transaction: {max_documents: 0}\n", "transaction.max_documents", "at least 1"),
        ("transaction: {max_documents: many}\n", "transaction.max_documents", "an integer"),
        (
            "destination: {postgres: {port: 70000}}\n",
            "destination.postgres.port",
            "at most 65535",
        ),
        ("name: '-x'\n", "name", "is not a valid name"),
        ("destination: {duckdb: {memory_limit: lots}}\n", "memory_limit", "memory size"),
        (BINDING.replace("table: t", "table: [t]"), "bindings[0].table", "must be a string"),
    ],
)
def test_plain_sentences(text: str, where: str, sentence: str) -> None:
    lines = problems(text)
    assert any(where in line and sentence in line for line in lines), lines
    for line in lines:
        assert "Input should" not in line and "valid list" not in line
        assert "at least 1 characters" not in line


# -- a key written twice --------------------------------------------------------------------


def test_duplicate_key_in_yaml_names_its_line() -> None:
    text = "name: a\nbindings: []\nname: b\n"
    (line,) = problems(text)
    assert line == "c.yaml:3: name: is written twice (first on line 1)"


def test_duplicate_nested_key_in_yaml() -> None:
    text = GOOD + "  job_id: 35\n"
    (line,) = problems(text)
    assert line == "c.yaml:6: dbt_job_trigger.job_id: is written twice (first on line 4)"


def test_duplicate_key_in_json_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{\n  "name": "a",\n  "bindings": [],\n  "name": "b"\n}\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (line,) = info.value.problems
    assert line == f"{path}:4: name: is written twice (first on line 2)"
