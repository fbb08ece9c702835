"""The config loader: same keys as the original, one line per problem, secrets never echoed."""

import json
from pathlib import Path

import pytest

from afterload.config import json_schema, load_config, parse_config
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


def test_defaults_match_the_original() -> None:
    block = parse_config(GOOD, Path("c.yaml")).dbt_job_trigger
    assert block is not None
    assert block.cause == "Estuary Flow"
    assert block.mode == "skip"
    assert block.interval.total_seconds() == 1800
    assert block.job_id == 34 and block.account_id == 12
    assert block.base_url == "https://ab123.us1.dbt.com"


def test_no_block_means_no_trigger() -> None:
    assert parse_config("{}", Path("c.yaml")).dbt_job_trigger is None
    assert parse_config("", Path("c.yaml")).dbt_job_trigger is None


def test_partly_filled_block_names_each_missing_key() -> None:
    lines = problems("dbt_job_trigger:\n  access_url: https://x.us1.dbt.com\n")
    assert any("dbt_job_trigger.account_id: is required" in p for p in lines)
    assert any("dbt_job_trigger.job_id: is required" in p for p in lines)
    assert any("dbt_job_trigger.api_key: is required" in p for p in lines)
    assert len(lines) == 3


def test_bad_interval_is_one_line_with_file_and_line() -> None:
    lines = problems(GOOD + "  interval: 30 minutes\n")
    assert lines == [
        "c.yaml:6: dbt_job_trigger.interval: '30 minutes' is not a duration (e.g. 30m, 1h, 90s)"
    ]


def test_unknown_key_is_an_error() -> None:
    lines = problems(GOOD + "  intervall: 5m\n")
    assert lines == ["c.yaml:6: dbt_job_trigger.intervall: is not a known key (check its spelling)"]


@pytest.mark.parametrize(
    "url",
    [
        "http://cloud.getdbt.com",
        "ftp://x.dbt.com",
        "cloud.getdbt.com",
        "https://x.com/?a=1",
        "https://bob:PW42@x.dbt.com",  # the password would show, and replace the API key
        "http://127.0.0.1:99999",  # was a traceback at the first request
    ],
)
def test_access_url_must_be_https(url: str) -> None:
    lines = problems(GOOD.replace("https://ab123.us1.dbt.com/", url))
    assert len(lines) == 1 and "dbt_job_trigger.access_url" in lines[0]
    assert "PW42" not in lines[0]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.5.6.7", "localhost", "[::1]"])
def test_http_allowed_only_on_loopback(host: str) -> None:
    text = GOOD.replace("https://ab123.us1.dbt.com/", f"http://{host}:8580")
    block = parse_config(text, Path("c.yaml")).dbt_job_trigger
    assert block is not None and block.base_url == f"http://{host}:8580"


def test_legacy_account_prefix() -> None:
    text = GOOD.replace("access_url: https://ab123.us1.dbt.com/", "account_prefix: ab123")
    block = parse_config(text, Path("c.yaml")).dbt_job_trigger
    assert block is not None and block.base_url == "https://ab123.us1.dbt.com"


@pytest.mark.parametrize("value", ["0", "-3", "abc", "true", "1.5", "9223372036854775808"])
def test_ids_are_positive_integers(value: str) -> None:
    lines = problems(GOOD.replace('job_id: "34"', f"job_id: {value}"))
    assert len(lines) == 1 and lines[0].startswith("c.yaml:4: dbt_job_trigger.job_id:")


def test_cause_limits() -> None:
    assert "at most 255" in problems(GOOD + f"  cause: {'x' * 256}\n")[0]
    # An empty cause is the default, as Estuary takes it (tests/config/test_sentences.py).


def test_mode_enum() -> None:
    (line,) = problems(GOOD + "  mode: cancel\n")
    assert "dbt_job_trigger.mode: 'cancel' is not one of 'skip', 'replace' or 'ignore'" in line


def test_env_interpolation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT_KEY", "from-env")
    monkeypatch.setenv("DBT_JOB", "77")
    text = GOOD.replace("dbtc_secret_value", "${DBT_KEY}").replace('"34"', '"${DBT_JOB}"')
    block = parse_config(text + "  cause: ${CAUSE:-nightly}\n", Path("c.yaml")).dbt_job_trigger
    assert block is not None
    assert block.api_key.get_secret_value() == "from-env"
    assert block.job_id == 77 and block.cause == "nightly"


def test_missing_env_var_names_key_and_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_KEY", raising=False)
    (line,) = problems(GOOD.replace("dbtc_secret_value", "${NOPE_KEY}"))
    assert line == "c.yaml:5: dbt_job_trigger.api_key: environment variable NOPE_KEY is not set"


def test_secret_never_in_repr_or_errors() -> None:
    block = parse_config(GOOD, Path("c.yaml")).dbt_job_trigger
    assert "dbtc_secret_value" not in repr(block)
    assert "dbtc_secret_value" not in str(block)
    lines = problems(GOOD.replace("api_key: dbtc_secret_value", "api_key: [dbtc_secret_value]"))
    assert "dbtc_secret_value" not in "\n".join(lines)


def test_json_config_and_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    doc = {
        "dbt_job_trigger": {
            "access_url": "https://x.us1.dbt.com",
            "account_id": 1,
            "job_id": 2,
            "api_key": "k",
            "mode": "nope",
        }
    }
    path.write_text(json.dumps(doc, indent=2))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (line,) = info.value.problems
    assert line.startswith(f"{path}:7: dbt_job_trigger.mode:")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("dbt_job_trigger: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(scalar)


def test_spec_schema() -> None:
    schema = json_schema()
    trigger = schema["$defs"]["DbtJobTrigger"]
    props = trigger["properties"]
    assert props["api_key"]["secret"] is True
    assert props["mode"]["enum"] == ["skip", "replace", "ignore"]
    assert props["mode"]["default"] == "skip"
    assert props["interval"]["default"] == "30m"
    assert props["cause"]["default"] == "Estuary Flow"
    assert set(trigger["required"]) == {"account_id", "job_id", "api_key"}
    assert all("description" in props[k] for k in ("access_url", "mode", "interval", "cause"))
    # Bounds are JSON Schema's own words (pydantic's ge/le leaked into it before).
    threads = props["threads_override"]["anyOf"][0]
    assert threads == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    text = json.dumps(schema)
    assert '"ge"' not in text and '"le"' not in text


def test_one_block_per_job() -> None:
    """Two blocks of one job shared its state: one block's run counted as the other's."""
    twice = (
        GOOD
        + "dbt_job_triggers:\n"
        + "".join(
            f"  - {{access_url: https://ab123.us1.dbt.com/, account_id: 12, job_id: {job}, "
            "api_key: other_key}\n"
            for job in (35, 34)
        )
    )
    assert problems(twice) == [
        "c.yaml:6: dbt_job_triggers: job 34 is given twice (with dbt_job_trigger or in this "
        "list); one block per job"
    ]
