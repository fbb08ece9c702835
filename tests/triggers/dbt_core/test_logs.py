"""dbt's JSON log lines: one INFO line per finished node, errors at WARNING, the rest DEBUG."""

from __future__ import annotations

import json
import logging

from hypothesis import given
from hypothesis import strategies as st

from afterload.triggers.dbt_core.logs import parse_line
from afterload.triggers.dbt_core.results import first_line


def event(name: str, level: str, msg: str, **data: object) -> str:
    info = {"name": name, "level": level, "msg": msg, "invocation_id": "inv-1"}
    return json.dumps({"info": info, "data": data}) + "\n"


def test_a_node_result_is_one_info_line_without_colours() -> None:
    line = parse_line(
        event(
            "LogModelResult",
            "info",
            "3 of 9 OK created sql view model main.stg [\x1b[32mOK\x1b[0m]",
        )
    )
    assert line.level == logging.INFO
    assert line.text == "3 of 9 OK created sql view model main.stg [OK]"
    assert line.invocation_id == "inv-1"


def test_start_lines_and_chatter_are_debug() -> None:
    assert parse_line(event("LogStartLine", "info", "1 of 9 START")).level == logging.DEBUG
    assert parse_line(event("Formatting", "info", "")).level == logging.DEBUG


def test_an_error_keeps_its_first_informative_line() -> None:
    exc = "Runtime Error\n  \n  dbt encountered an error while reading profiles.yml.\n  more"
    line = parse_line(
        event("MainEncounteredError", "error", "Encountered an error:\n" + exc, exc=exc)
    )
    assert line.level == logging.WARNING
    assert line.error == "dbt encountered an error while reading profiles.yml."


def test_text_that_is_not_json_is_debug() -> None:
    line = parse_line("Traceback (most recent call last):\n")
    assert (line.level, line.text, line.error) == (
        logging.DEBUG,
        "Traceback (most recent call last):",
        None,
    )


@given(st.text())
def test_any_text_parses(raw: str) -> None:
    line = parse_line(raw)
    assert line.level in (logging.DEBUG, logging.INFO, logging.WARNING)


@given(
    st.recursive(
        st.none() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
    )
)
def test_any_json_parses(value: object) -> None:
    parse_line(json.dumps(value))
    parse_line(json.dumps({"info": value, "data": value}))


def test_first_line_skips_headings() -> None:
    assert first_line("Compilation Error in model x (models/x.sql)\n  bad") == (
        "Compilation Error in model x (models/x.sql)"
    )
    assert first_line("Database Error\n  column not found\n") == "column not found"
    assert first_line("\x1b[31m\n---\n") == ""
    assert len(first_line("x" * 1000)) == 300


def test_a_message_ending_in_a_colon_keeps_what_follows() -> None:
    """dbt's wrong-target error listed the valid targets on the next lines, which were cut."""
    text = (
        "The profile 'shop' does not have a target named 'nosuch'. "
        "The valid target names for this profile are:\n - duckdb\n - prod\n"
    )
    assert first_line(text).endswith("are: - duckdb - prod")
