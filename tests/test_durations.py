from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from afterload.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800),
        ("1h30m", 5400),
        ("90s", 90),
        ("0s", 0),
        ("0", 0),
        ("1.5h", 5400),
        ("250ms", 0.25),
        ("2h45m30.5s", 9930.5),
        ("1us", 1e-6),
        ("1µs", 1e-6),
    ],
)
def test_parses_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        "30 minutes",
        "",
        "m",
        "1d",
        "-5m",
        "30",
        "1h 30m",
        "h1",
        "9223372036854775807s",
        "99999999999h",
    ],
)
def test_rejects_what_go_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**7))
def test_format_round_trips(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value
