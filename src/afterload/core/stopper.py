"""A stop request (from a signal handler, a test, an embedding program), waited on instead of
sleeping, so a driver's idle wait ends the moment a stop is asked for."""

from __future__ import annotations

import threading


class Stopper:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.event.set()

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def sleep(self, seconds: float) -> None:
        self.event.wait(max(0.0, seconds))
