"""What the emulated tenant holds and how it misbehaves: settings and injectable faults."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

QUEUED, STARTING, RUNNING, SUCCESS, ERROR, CANCELLED = 1, 2, 3, 10, 20, 30
HUMANIZED = {1: "Queued", 2: "Starting", 3: "Running", 10: "Success", 20: "Error", 30: "Cancelled"}
ACTIVE = (QUEUED, STARTING, RUNNING)


@dataclass
class EmulatorSettings:
    """What the emulated tenant holds, and how its runs and its network behave."""

    accounts: dict[int, list[int]] = field(default_factory=lambda: {1: [1]})
    api_key: str = "emulator-key"
    queue_seconds: float = 1.0  # queued + starting, once no earlier run of the job is active
    run_seconds: float = 5.0
    fail_rate: float = 0.0  # share of runs ending in Error, drawn from a seeded generator
    rate_limit: int | None = None  # requests per minute per account
    latency: float = 0.0  # seconds added to every API answer
    seed: int = 0
    first_run_id: int = 70506183629193  # above 2**32, as real run ids are
    serial: bool = True  # runs of one job execute one after the other, as in dbt Cloud
    forbidden_accounts: set[int] = field(default_factory=set)  # answer 403, like an IP block

    def __post_init__(self) -> None:
        if min(self.queue_seconds, self.run_seconds, self.latency) < 0:
            raise ValueError("durations must not be negative")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError("fail_rate must be between 0 and 1")
        if self.rate_limit is not None and self.rate_limit < 1:
            raise ValueError("rate_limit must be at least 1 request per minute")


@dataclass
class Fault:
    """A misbehaviour for the next ``times`` API requests whose method and path match.

    ``path`` is a regex searched in the URL path; ``method`` "*" matches any method.

    - ``status`` alone: answer it (``body`` or an error envelope) without doing the work.
    - ``after=True``: do the work, then answer ``status``: the run exists, the client saw an error.
      With a 2xx status and no ``body`` the real answer is sent, which only makes sense with
      ``delay`` (a late success).
    - ``delay``: seconds to wait before answering; real time, not the emulator's clock. Alone,
      it sends the real answer late.
    - ``drop=True``: do the work, then close the TCP connection without sending anything.
    """

    method: str = "*"
    path: str = ""
    status: int | None = None
    body: str | None = None
    content_type: str = "text/html; charset=utf-8"
    retry_after: int | None = None
    after: bool = False
    delay: float = 0.0
    drop: bool = False
    times: int = 1

    def __post_init__(self) -> None:
        try:
            re.compile(self.path)
        except (re.error, TypeError) as exc:
            raise ValueError(f"path is not a valid regex: {exc}") from None
        if not isinstance(self.method, str) or not isinstance(self.times, int) or self.times < 1:
            raise ValueError("method must be a string and times a positive integer")
        if self.status is not None and not (
            isinstance(self.status, int) and 100 <= self.status <= 599
        ):
            raise ValueError("status must be an HTTP status code")
        if not isinstance(self.delay, int | float) or self.delay < 0:
            raise ValueError("delay must be a non-negative number of seconds")
        if self.drop and self.status is not None:
            raise ValueError("a dropped connection has no status")
        if self.status is None and not self.drop and not self.delay:
            raise ValueError("a fault needs a status, a delay or drop=True")

    def matches(self, method: str, path: str) -> bool:
        return (
            self.method.upper() in ("*", method.upper()) and re.search(self.path, path) is not None
        )

    @property
    def skips_work(self) -> bool:
        return self.status is not None and not self.after
