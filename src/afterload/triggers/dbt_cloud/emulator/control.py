"""The emulator as a test drives it: faults armed and spent, the request log and the runs read,
the state reset — from Python or over HTTP under ``/_emulator/``. Kept apart from ``app.py``,
which emulates dbt Cloud's own API."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from afterload.triggers.dbt_cloud.emulator.runs import EmulatedRun
from afterload.triggers.dbt_cloud.emulator.settings import EmulatorSettings, Fault


@dataclass
class _Armed:
    fault: Fault
    left: int


class Controls:
    """The control surface of :class:`DbtCloudEmulator`; its state lives there."""

    _clock: Callable[[], float]
    _lock: threading.Lock
    _settings: EmulatorSettings
    _runs: dict[int, EmulatedRun]
    _log: list[dict[str, Any]]
    _faults: list[_Armed]

    # Provided by the emulator.
    if TYPE_CHECKING:

        def _fresh_state(self) -> None: ...

        def _render(
            self, run: EmulatedRun, now: float, *, as_created: bool = False
        ) -> dict[str, Any]: ...

    # ---- Python API -----------------------------------------------------------------------

    @property
    def settings(self) -> EmulatorSettings:
        return self._settings

    def inject(self, fault: Fault) -> None:
        """Arm a fault; faults are tried in the order they were injected."""
        with self._lock:
            self._faults.append(_Armed(fault, fault.times))

    def reset(self, settings: EmulatorSettings | None = None) -> None:
        """Forget runs, requests and faults (ids restart), optionally with new settings.

        New settings let one running server serve many differently configured tests.
        """
        with self._lock:
            if settings is not None:
                self._settings = settings
            self._fresh_state()

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The API request log: method, path, query, status (None if dropped), time, auth scheme."""
        with self._lock:
            return [dict(entry) for entry in self._log]

    @property
    def runs(self) -> list[dict[str, Any]]:
        """Every run of every account, as the API would show it now, oldest first."""
        with self._lock:
            now = self._clock()
            return [self._render(run, now) for run in self._runs.values()]

    # ---- faults -----------------------------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for armed in self._faults:
                if armed.fault.matches(method, path):
                    armed.left -= 1
                    if armed.left == 0:
                        self._faults.remove(armed)
                    return armed.fault
        return None

    # ---- HTTP -----------------------------------------------------------------------------

    def _control_routes(self) -> list[Route]:
        return [
            Route("/_emulator/faults", self._post_fault, methods=["POST"]),
            Route("/_emulator/requests", self._get_requests, methods=["GET"]),
            Route("/_emulator/runs", self._get_runs, methods=["GET"]),
            Route("/_emulator/reset", self._post_reset, methods=["POST"]),
        ]

    async def _post_fault(self, request: Request) -> Response:
        try:
            data = await request.json()
            fault = Fault(**data)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": f"not a fault: {exc}"}, status_code=400)
        self.inject(fault)
        return JSONResponse({"armed": asdict(fault)}, status_code=201)

    async def _get_requests(self, request: Request) -> Response:
        return JSONResponse(self.requests)

    async def _get_runs(self, request: Request) -> Response:
        return JSONResponse(self.runs)

    async def _post_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"reset": True})
