"""A local dbt Cloud API v2 emulator, so the trigger can be tested and demoed without an account.

It serves the endpoints afterload uses (retrieve job, trigger run, list, retrieve and cancel
runs) with the spec's envelope, status codes and error bodies, moves runs through their states on
an injectable clock, and injects the failures real networks produce (5xx, HTML bodies, late or
lost responses) so a client's retries can be checked for duplicate runs.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import random
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

log = logging.getLogger("afterload.dbt.emulator")

QUEUED, STARTING, RUNNING, SUCCESS, ERROR, CANCELLED = 1, 2, 3, 10, 20, 30
_HUMANIZED = {1: "Queued", 2: "Starting", 3: "Running", 10: "Success", 20: "Error", 30: "Cancelled"}
_ACTIVE = (QUEUED, STARTING, RUNNING)
#: Optional trigger-body fields that dbt echoes back in ``run.trigger``.
_OVERRIDES = (
    "git_branch",
    "git_sha",
    "azure_pull_request_id",
    "github_pull_request_id",
    "gitlab_merge_request_id",
    "non_native_pull_request_id",
    "schema_override",
    "dbt_version_override",
    "threads_override",
    "target_name_override",
    "generate_docs_override",
    "timeout_seconds_override",
    "steps_override",
)
_ORDERINGS = ("id", "created_at", "finished_at")
_MAX_LIMIT = 100
_FIRST_TRIGGER_ID = 80_000_000_000_001
_INVALID = "The request was invalid. Please double check the provided data and try again."
_SEND_KEY = "afterload.emulator.send"  # the server's own `send`, kept so a fault can drop it

Handler = Callable[[Request, int], Awaitable[Response]]


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


@dataclass
class _Armed:
    fault: Fault
    left: int


@dataclass
class _Run:
    """What a run is made of; its status and timestamps are derived from these and the clock."""

    id: int
    account_id: int
    job_id: int
    trigger: dict[str, Any]
    href: str
    created: float
    fails: bool
    eligible: float  # when no earlier run of the same job is active any more
    cancelled: float | None = None


class _App(Starlette):
    """Starlette that keeps the server's ``send`` in the scope, so a fault can drop the socket."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[_SEND_KEY] = send
        await super().__call__(scope, receive, send)


class DbtCloudEmulator:
    """The emulated dbt Cloud state and its Starlette app; safe to inspect from other threads."""

    def __init__(
        self, settings: EmulatorSettings | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._halt = threading.Event()  # set while a server stops, to cut fault delays short
        self._born = clock()
        self._settings = settings or EmulatorSettings()
        self._fresh_state()
        self.app: Starlette = _App(
            routes=self._routes(), exception_handlers={HTTPException: _http_error}
        )

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

    # ---- state ------------------------------------------------------------------------------

    def _fresh_state(self) -> None:
        self._runs: dict[int, _Run] = {}
        self._log: list[dict[str, Any]] = []
        self._faults: list[_Armed] = []
        self._hits: dict[int, deque[float]] = {}
        self._rng = random.Random(self._settings.seed)
        self._next_id = self._settings.first_run_id
        self._next_trigger_id = _FIRST_TRIGGER_ID

    async def _pause(self, seconds: float) -> None:
        """A fault's delay, which a stopping server cuts short instead of waiting it out."""
        if seconds > 0:
            await asyncio.to_thread(self._halt.wait, seconds)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for armed in self._faults:
                if armed.fault.matches(method, path):
                    armed.left -= 1
                    if armed.left == 0:
                        self._faults.remove(armed)
                    return armed.fault
        return None

    def _admit(self, account_id: int, now: float) -> int | None:
        """Count a request against the per-minute limit; the seconds to wait if over it."""
        limit = self._settings.rate_limit
        if limit is None:
            return None
        with self._lock:
            hits = self._hits.setdefault(account_id, deque())
            while hits and hits[0] <= now - 60:
                hits.popleft()
            if len(hits) >= limit:
                return max(1, math.ceil(hits[0] + 60 - now))
            hits.append(now)
        return None

    def _phases(self, run: _Run) -> tuple[float, float, float]:
        """When the run would be dequeued, start running and finish, if never cancelled."""
        queue = self._settings.queue_seconds
        starting = min(1.0, queue / 2)
        dequeued = run.eligible + queue - starting
        started = run.eligible + queue
        return dequeued, started, started + self._settings.run_seconds

    def _status(self, run: _Run, now: float) -> int:
        if run.cancelled is not None:
            return CANCELLED
        dequeued, started, finished = self._phases(run)
        if now < dequeued:
            return QUEUED
        if now < started:
            return STARTING
        if now < finished:
            return RUNNING
        return ERROR if run.fails else SUCCESS

    def _finished(self, run: _Run, now: float) -> float | None:
        if run.cancelled is not None:
            return run.cancelled
        end = self._phases(run)[2]
        return end if end <= now else None

    def _schedule(self, account_id: int, job_id: int) -> None:
        """Recompute when each run of a job may leave the queue (after creation or a cancel)."""
        busy_until = -math.inf
        for run in self._runs.values():
            if (run.account_id, run.job_id) != (account_id, job_id):
                continue
            run.eligible = max(run.created, busy_until) if self._settings.serial else run.created
            end = run.cancelled if run.cancelled is not None else self._phases(run)[2]
            busy_until = max(busy_until, end)

    # ---- rendering ----------------------------------------------------------------------------

    def _job(self, account_id: int, job_id: int) -> dict[str, Any]:
        return {
            "id": job_id,
            "account_id": account_id,
            "project_id": _project_id(account_id),
            "environment_id": _environment_id(account_id),
            "name": f"Emulated job {job_id}",
            "description": "A job of the local dbt Cloud emulator.",
            "dbt_version": None,
            "execute_steps": ["dbt build"],
            "execution": {"timeout_seconds": 0},
            "generate_docs": False,
            "generate_sources": False,
            "job_type": "other",
            "lifecycle_webhooks": False,
            "run_compare_changes": False,
            "run_generate_sources": False,
            "run_lint": False,
            "errors_on_lint_failure": True,
            "settings": {"threads": 4, "target_name": "default"},
            "state": 1,
            "triggers": {"github_webhook": False, "schedule": False, "git_provider_webhook": False},
            "triggers_on_draft_pr": False,
            "deferring_environment_id": None,
            "deferring_job_definition_id": None,
            "created_at": _timestamp(self._born),
            "updated_at": _timestamp(self._born),
        }

    def _render(self, run: _Run, now: float, *, as_created: bool = False) -> dict[str, Any]:
        """The run as the API shows it at ``now``; ``as_created`` is the trigger's answer."""
        at = run.created if as_created else now
        status = QUEUED if as_created else self._status(run, now)
        stop = at if run.cancelled is None else min(at, run.cancelled)
        dequeued, started, _ = self._phases(run)
        dequeued_at = dequeued if not as_created and dequeued <= stop else None
        started_at = started if not as_created and started <= stop else None
        finished_at = None if as_created else self._finished(run, now)
        end = finished_at if finished_at is not None else at
        complete = status not in _ACTIVE
        seen = [t for t in (run.created, dequeued_at, started_at, finished_at) if t is not None]
        messages = {ERROR: "Emulated failure (fail_rate).", CANCELLED: "Cancelled by user."}
        return {
            "id": run.id,
            "trigger_id": run.trigger["id"],
            "account_id": run.account_id,
            "environment_id": _environment_id(run.account_id),
            "project_id": _project_id(run.account_id),
            "job_definition_id": run.job_id,
            "job_id": run.job_id,
            "status": status,
            "status_humanized": _HUMANIZED[status],
            "status_message": messages.get(status),
            "dbt_version": "latest",
            "git_branch": run.trigger.get("git_branch"),
            "git_sha": run.trigger.get("git_sha"),
            "deferring_run_id": None,
            "artifacts_saved": status in (SUCCESS, ERROR),
            "artifact_s3_path": None,
            "has_docs_generated": False,
            "has_sources_generated": False,
            "notifications_sent": complete,
            "blocked_by": [],
            "created_at": _timestamp(run.created),
            "updated_at": _timestamp(max(seen)),
            "dequeued_at": _timestamp(dequeued_at),
            "started_at": _timestamp(started_at),
            "finished_at": _timestamp(finished_at),
            "last_checked_at": None,
            "last_heartbeat_at": _timestamp(now) if status == RUNNING else None,
            "should_start_at": None,
            "in_progress": not complete,
            "is_complete": complete,
            "is_success": status == SUCCESS,
            "is_error": status == ERROR,
            "is_cancelled": status == CANCELLED,
            "is_running": status == RUNNING,
            **_durations("duration", end - run.created),
            **_durations("queued_duration", (started_at or end) - run.created),
            **_durations("run_duration", end - started_at if started_at is not None else 0.0),
            "created_at_humanized": f"{_humanize(at - run.created)} ago",
            "finished_at_humanized": (
                None if finished_at is None else f"{_humanize(at - finished_at)} ago"
            ),
            "retrying_run_id": None,
            "can_retry": status == ERROR,
            "retry_not_supported_reason": None if status == ERROR else "RETRY_NOT_FAILED_RUN",
            "used_repo_cache": False,
            "href": run.href,
            "trigger": dict(run.trigger),
            "job": self._job(run.account_id, run.job_id),
            "run_steps": [],
        }

    # ---- HTTP -----------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        base = "/api/v2/accounts/{account_id:int}"
        api = [
            ("/jobs/{job_id:int}", ["GET"], self._get_job),
            ("/jobs/{job_id:int}/run", ["POST"], self._trigger),
            ("/runs", ["GET"], self._list_runs),
            ("/runs/{run_id:int}", ["GET"], self._get_run),
            ("/runs/{run_id:int}/cancel", ["POST"], self._cancel),
        ]
        routes = [
            Route(base + path + slash, self._endpoint(handler), methods=methods)
            for path, methods, handler in api
            for slash in ("/", "")
        ]
        self._api_paths = [route.path_regex for route in routes]
        routes.append(Route("/api/{rest:path}", self._endpoint(self._unknown), methods=_ALL))
        routes += [
            Route("/_emulator/faults", self._post_fault, methods=["POST"]),
            Route("/_emulator/requests", self._get_requests, methods=["GET"]),
            Route("/_emulator/runs", self._get_runs, methods=["GET"]),
            Route("/_emulator/reset", self._post_reset, methods=["POST"]),
        ]
        return routes

    def _endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._serve(request, handler)

        return endpoint

    async def _serve(self, request: Request, handler: Handler) -> Response:
        """Faults, latency and logging around the real work, which ``_process`` does."""
        arrived = self._clock()
        fault = self._take_fault(request.method, request.url.path)
        if self._settings.latency:
            await asyncio.sleep(self._settings.latency)
        response = None if fault and fault.skips_work else await self._process(request, handler)
        if fault is None:
            assert response is not None
            self._record(request, arrived, response, faulted=False)
            return response
        if fault.drop:
            self._record(request, arrived, None, faulted=True)
            await self._pause(fault.delay)
            if not await _drop_connection(request):
                raise ConnectionAbortedError("fault: dropped (no transport to abort)")
            return Response(status_code=204)  # goes nowhere: the connection is gone
        late_success = fault.body is None and fault.status is not None and fault.status < 300
        if response is None or (fault.status is not None and not late_success):
            response = _fault_response(fault)
        self._record(request, arrived, response, faulted=True)
        await self._pause(fault.delay)
        return response

    async def _process(self, request: Request, handler: Handler) -> Response:
        """Authentication, the account checks and the rate limit, then the endpoint itself."""
        settings = self._settings
        if not _token_ok(request.headers.get("authorization"), settings.api_key):
            return _envelope(401, "Invalid token.", developer_message=None)
        account_id: int | None = request.path_params.get("account_id")
        if account_id is None:
            return await handler(request, 0)
        if account_id in settings.forbidden_accounts:
            data = {"account_id": account_id, "user_id": None, "is_service_token": True}
            return _envelope(403, "Forbidden: Access denied", data)
        if account_id not in settings.accounts:
            return _envelope(404, f"Account {account_id} was not found.")
        wait = self._admit(account_id, self._clock())
        if wait is not None:
            headers = {"Retry-After": str(wait)}
            return _envelope(429, "Too many requests. Please try again later.", headers=headers)
        return await handler(request, account_id)

    def _record(
        self, request: Request, arrived: float, response: Response | None, *, faulted: bool
    ) -> None:
        entry = {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "status": None if response is None else response.status_code,
            "time": arrived,
            "auth_scheme": _auth_scheme(request.headers.get("authorization")),
            "fault": faulted,
        }
        with self._lock:
            self._log.append(entry)

    async def _get_job(self, request: Request, account_id: int) -> Response:
        job_id: int = request.path_params["job_id"]
        if job_id not in self._settings.accounts[account_id]:
            return _envelope(404, f"Job {job_id} was not found.")
        return _ok(self._job(account_id, job_id))

    async def _trigger(self, request: Request, account_id: int) -> Response:
        job_id: int = request.path_params["job_id"]
        if job_id not in self._settings.accounts[account_id]:
            return _envelope(404, f"Job {job_id} was not found.")
        body = await _read_body(request)
        if isinstance(body, Response):
            return body
        cause = body.get("cause")
        if cause is None or cause == "":
            return _envelope(400, _INVALID, {"cause": ["This field is required."]})
        if not isinstance(cause, str):
            return _envelope(400, _INVALID, {"cause": ["Not a valid string."]})
        project = _project_id(account_id)
        base = str(request.base_url).rstrip("/")
        with self._lock:
            now = self._clock()
            run_id, self._next_id = self._next_id, self._next_id + 1
            trigger = {"id": self._next_trigger_id, "cause": cause, "job_definition_id": job_id}
            trigger |= {name: body.get(name) for name in _OVERRIDES}
            trigger["cause_category"] = "api"
            self._next_trigger_id += 1
            run = _Run(
                id=run_id,
                account_id=account_id,
                job_id=job_id,
                trigger=trigger,
                href=f"{base}/deploy/{account_id}/projects/{project}/runs/{run_id}/",
                created=now,
                fails=self._rng.random() < self._settings.fail_rate,
                eligible=now,
            )
            self._runs[run_id] = run
            self._schedule(account_id, job_id)
            return _ok(self._render(run, now, as_created=True))

    async def _get_run(self, request: Request, account_id: int) -> Response:
        with self._lock:
            run = self._find_run(request, account_id)
            if run is None:
                return _envelope(404, f"Run {request.path_params['run_id']} was not found.")
            return _ok(self._render(run, self._clock()))

    async def _cancel(self, request: Request, account_id: int) -> Response:
        """Cancel an active run; a finished one is answered unchanged, as a success."""
        with self._lock:
            run = self._find_run(request, account_id)
            if run is None:
                return _envelope(404, f"Run {request.path_params['run_id']} was not found.")
            now = self._clock()
            if self._status(run, now) in _ACTIVE:
                run.cancelled = now
                self._schedule(run.account_id, run.job_id)
            return _ok(self._render(run, now))

    def _find_run(self, request: Request, account_id: int) -> _Run | None:
        run = self._runs.get(request.path_params["run_id"])
        return run if run is not None and run.account_id == account_id else None

    async def _list_runs(self, request: Request, account_id: int) -> Response:
        query = _parse_list_query(request)
        if isinstance(query, Response):
            return query
        order = query.pop("order_by")
        limit, offset = query["limit"], query["offset"]
        with self._lock:
            now = self._clock()
            selected = [
                (run, self._status(run, now))
                for run in self._runs.values()
                if run.account_id == account_id
                and query.get("job_definition_id", run.job_id) == run.job_id
                and run.id > query.get("id__gt", -1)
            ]
            for wanted in (
                [query["status"]] if "status" in query else None,
                query.get("status__in"),
            ):
                if wanted is not None:
                    selected = [(run, status) for run, status in selected if status in wanted]
            field_name = order.lstrip("-")
            selected.sort(key=lambda pair: self._sort_key(pair[0], field_name, now))
            if order.startswith("-"):
                selected.reverse()
            page = [self._render(run, now) for run, _ in selected[offset : offset + limit]]
        filters = {"account_id": account_id, "state": "all", **query}
        extra = {
            "filters": filters,
            "order_by": order,
            "pagination": {"count": len(page), "total_count": len(selected)},
        }
        return _ok(page, extra=extra)

    def _sort_key(self, run: _Run, field_name: str, now: float) -> tuple[bool, float, int]:
        """Sort keys for order_by; unfinished runs sort last, as NULLs do in PostgreSQL."""
        if field_name == "created_at":
            return (False, run.created, run.id)
        if field_name == "finished_at":
            finished = self._finished(run, now)
            return (finished is None, finished or 0.0, run.id)
        return (False, float(run.id), run.id)

    async def _unknown(self, request: Request, account_id: int) -> Response:
        """What the routes above do not serve: 405 on a known path, else 404."""
        if any(regex.match(request.url.path) for regex in self._api_paths):
            return _envelope(405, f'Method "{request.method}" not allowed.')
        return _envelope(404, f"Not found: {request.url.path}")

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


_ALL = ["GET", "POST", "PUT", "PATCH", "DELETE"]


class EmulatorServer:
    """Uvicorn serving an emulator from a background thread, for tests and the demo."""

    def __init__(self, emulator: DbtCloudEmulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.emulator = emulator
        self._host = host
        self._port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._thread is None:
            raise RuntimeError("the emulator server is not started")
        return _url(self._host, self._port)

    def start(self) -> None:
        """Listen (port 0 picks a free one) and return once requests are served."""
        if self._thread is not None:
            raise RuntimeError("the emulator server is already started")
        sock = _listen(self._host, self._port)
        self.emulator._halt.clear()
        self._port = sock.getsockname()[1]
        self._server = uvicorn.Server(_uvicorn_config(self.emulator.app))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="dbt-emulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator server did not start")
            time.sleep(0.002)

    def stop(self) -> None:
        """Stop serving; answers held back by a fault's delay are sent at once."""
        if self._thread is None:
            return
        self._server.should_exit = True
        self.emulator._halt.set()
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> EmulatorServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(settings: EmulatorSettings, host: str, port: int) -> None:
    """Serve an emulator in the foreground until interrupted (the CLI command)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    sock = _listen(host, port)
    url = _url(host, sock.getsockname()[1])
    jobs = ", ".join(f"account {a}: jobs {j}" for a, j in settings.accounts.items())
    log.info("dbt Cloud emulator listening at %s (%s)", url, jobs)
    uvicorn.Server(_uvicorn_config(DbtCloudEmulator(settings).app)).run(sockets=[sock])


# ---- helpers ------------------------------------------------------------------------------


def _uvicorn_config(app: Starlette) -> Any:
    # h11 only: a dropped connection needs its transport, and that is where we know to find it.
    return uvicorn.Config(
        app,
        http="h11",
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,  # a backstop: stop() cuts fault delays short
    )


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say so; without it
    # every keep-alive answer waits ~40 ms on Nagle and delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _project_id(account_id: int) -> int:
    return 100_000 + account_id


def _environment_id(account_id: int) -> int:
    return 200_000 + account_id


def _timestamp(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(sep=" ", timespec="microseconds")


def _durations(name: str, seconds: float) -> dict[str, str]:
    whole = max(0, int(seconds))
    clock = f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    return {name: clock, f"{name}_humanized": _humanize(seconds)}


def _humanize(seconds: float) -> str:
    left = max(0, int(seconds))
    parts: list[str] = []
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        count, left = divmod(left, size)
        if count or (unit == "second" and not parts):
            parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return ", ".join(parts)


def _auth_scheme(header: str | None) -> str | None:
    """The scheme word only: a bare key sent without one must not reach the log."""
    if header is None:
        return None
    scheme = header.split(" ", 1)[0]
    return scheme if scheme.lower() in ("token", "bearer") else "other"


def _token_ok(header: str | None, api_key: str) -> bool:
    scheme, _, key = (header or "").partition(" ")
    if scheme.lower() not in ("token", "bearer"):
        return False
    return hmac.compare_digest(key.strip().encode(), api_key.encode())


def _envelope(
    code: int,
    message: str,
    data: Any = None,
    *,
    developer_message: str | None = "",
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    status = {
        "code": code,
        "is_success": code < 400,
        "user_message": message,
        "developer_message": developer_message,
    }
    body: dict[str, Any] = {"status": status, "data": data}
    if extra is not None:
        body["extra"] = extra
    return JSONResponse(body, status_code=code, headers=headers)


def _ok(data: Any, *, extra: dict[str, Any] | None = None) -> JSONResponse:
    return _envelope(200, "Success!", data, extra=extra)


def _fault_response(fault: Fault) -> Response:
    status = fault.status or 500
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
    if fault.body is not None:
        return Response(fault.body, status, headers=headers, media_type=fault.content_type)
    return _envelope(status, f"Injected fault: HTTP {status}.", headers=headers)


async def _drop_connection(request: Request) -> bool:
    """Abort the TCP connection under this request, so no response bytes are ever sent.

    Uvicorn exposes no transport to the app; its h11 ``send`` is a method of an object holding
    it. The client sees the connection closed before any answer (httpx: RemoteProtocolError).
    """
    send = request.scope.get(_SEND_KEY)
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if not isinstance(transport, asyncio.Transport):
        return False
    transport.abort()
    for _ in range(2):  # let uvicorn see the loss, so the reply we return is discarded
        await asyncio.sleep(0)
    return True


async def _read_body(request: Request) -> dict[str, Any] | Response:
    """The trigger body, from JSON or a urlencoded form; an empty body is an empty object."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    if content_type.startswith("multipart/"):
        return _envelope(415, "Unsupported media type: the emulator reads JSON or forms.")
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return _envelope(400, _INVALID, {"detail": f"JSON parse error - {exc}"})
    if not isinstance(data, dict):
        message = f"Invalid data. Expected a dictionary, but got {type(data).__name__}."
        return _envelope(400, _INVALID, {"non_field_errors": [message]})
    return data


def _parse_list_query(request: Request) -> dict[str, Any] | Response:
    """List Runs' query parameters, checked as dbt does; unknown ones are ignored."""
    params = request.query_params
    query: dict[str, Any] = {"limit": _MAX_LIMIT, "offset": 0}
    errors: dict[str, Any] = {}
    for name in ("job_definition_id", "status", "id__gt", "limit", "offset"):
        value = params.get(name)
        if value is None:
            continue
        try:
            query[name] = int(value)
        except ValueError:
            errors[name] = ["A valid integer is required."]
    if not 1 <= query["limit"] <= _MAX_LIMIT:
        errors["limit"] = [f"Ensure this value is between 1 and {_MAX_LIMIT}."]
    if query["offset"] < 0:
        errors["offset"] = ["Ensure this value is greater than or equal to 0."]
    raw_status_in = params.get("status__in")
    if raw_status_in is not None:
        statuses = _int_list(raw_status_in)
        if statuses is None:
            errors["status__in"] = f"'{raw_status_in}' is not valid under any of the given schemas"
        else:
            query["status__in"] = statuses
    order = params.get("order_by", "id")
    if order.lstrip("-") not in _ORDERINGS or order.count("-") > 1:
        errors["order_by"] = [f"Ordering must be one of {', '.join(_ORDERINGS)}, optionally -."]
    query["order_by"] = order
    if errors:
        return _envelope(400, _INVALID, errors)
    return query


def _int_list(text: str) -> list[int] | None:
    """A JSON-style array of integers (``[1,2,3]`` or ``[1, 2, 3]``), else None."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        return None
    return value


async def _http_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _envelope(exc.status_code, str(exc.detail))
    return _envelope(500, "Internal server error.")
