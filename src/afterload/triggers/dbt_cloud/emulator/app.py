"""A local dbt Cloud API v2 emulator, so the trigger can be tested and demoed without an account.

It serves the endpoints afterload uses (retrieve job, trigger run, list, retrieve and cancel
runs) with the spec's envelope, status codes and error bodies, moves runs through their states on
an injectable clock, and injects the failures real networks produce (5xx, HTML bodies, late or
lost responses) so a client's retries can be checked for duplicate runs.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from afterload.triggers.dbt_cloud.emulator.control import Controls
from afterload.triggers.dbt_cloud.emulator.options import OVERRIDES, option_errors
from afterload.triggers.dbt_cloud.emulator.runs import (
    EmulatedRun,
    finish_time,
    project_id,
    render_job,
    render_run,
    run_status,
    schedule,
)
from afterload.triggers.dbt_cloud.emulator.settings import ACTIVE, ERROR, EmulatorSettings
from afterload.triggers.dbt_cloud.emulator.wire import (
    INVALID,
    SEND_KEY,
    auth_scheme,
    drop_connection,
    envelope,
    fault_response,
    http_error,
    ok,
    parse_list_query,
    read_body,
    token_ok,
)

_FIRST_TRIGGER_ID = 80_000_000_000_001

Handler = Callable[[Request, int], Awaitable[Response]]
_ALL = ["GET", "POST", "PUT", "PATCH", "DELETE"]


class _App(Starlette):
    """Starlette that keeps the server's ``send`` in the scope, so a fault can drop the socket."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[SEND_KEY] = send
        await super().__call__(scope, receive, send)


class DbtCloudEmulator(Controls):
    """The emulated dbt Cloud state and its Starlette app; safe to inspect from other threads
    (the inspection and control API is :class:`Controls`, in ``control.py``)."""

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
            routes=self._routes(), exception_handlers={HTTPException: http_error}
        )

    # ---- state ------------------------------------------------------------------------------

    def _fresh_state(self) -> None:
        self._runs: dict[int, EmulatedRun] = {}
        self._log: list[dict[str, Any]] = []
        self._faults = []
        self._hits: dict[int, deque[float]] = {}
        self._rng = random.Random(self._settings.seed)
        self._next_id = self._settings.first_run_id
        self._next_trigger_id = _FIRST_TRIGGER_ID

    async def _pause(self, seconds: float) -> None:
        """A fault's delay, which a stopping server cuts short instead of waiting it out."""
        if seconds > 0:
            await asyncio.to_thread(self._halt.wait, seconds)

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

    def _schedule(self, account_id: int, job_id: int) -> None:
        runs = [r for r in self._runs.values() if (r.account_id, r.job_id) == (account_id, job_id)]
        schedule(runs, self._settings)

    def _status(self, run: EmulatedRun, now: float) -> int:
        return run_status(run, now, self._settings)

    def _render(self, run: EmulatedRun, now: float, *, as_created: bool = False) -> dict[str, Any]:
        return render_run(run, now, self._settings, self._born, as_created=as_created)

    # ---- HTTP -----------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        base = "/api/v2/accounts/{account_id:int}"
        api = [
            ("/jobs/{job_id:int}", ["GET"], self._get_job),
            ("/jobs/{job_id:int}/run", ["POST"], self._trigger),
            ("/jobs/{job_id:int}/rerun", ["POST"], self._rerun),
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
        routes += self._control_routes()
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
            if not await drop_connection(request):
                raise ConnectionAbortedError("fault: dropped (no transport to abort)")
            return Response(status_code=204)  # goes nowhere: the connection is gone
        late_success = fault.body is None and fault.status is not None and fault.status < 300
        if response is None or (fault.status is not None and not late_success):
            response = fault_response(fault)
        self._record(request, arrived, response, faulted=True)
        await self._pause(fault.delay)
        return response

    async def _process(self, request: Request, handler: Handler) -> Response:
        """Authentication, the account checks and the rate limit, then the endpoint itself."""
        settings = self._settings
        if not token_ok(request.headers.get("authorization"), settings.api_key):
            return envelope(401, "Invalid token.", developer_message=None)
        account_id: int | None = request.path_params.get("account_id")
        if account_id is None:
            return await handler(request, 0)
        if account_id in settings.forbidden_accounts:
            data = {"account_id": account_id, "user_id": None, "is_service_token": True}
            return envelope(403, "Forbidden: Access denied", data)
        if account_id not in settings.accounts:
            return envelope(404, f"Account {account_id} was not found.")
        wait = self._admit(account_id, self._clock())
        if wait is not None:
            headers = {"Retry-After": str(wait)}
            return envelope(429, "Too many requests. Please try again later.", headers=headers)
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
            "auth_scheme": auth_scheme(request.headers.get("authorization")),
            "fault": faulted,
        }
        with self._lock:
            self._log.append(entry)

    async def _get_job(self, request: Request, account_id: int) -> Response:
        job_id: int = request.path_params["job_id"]
        if job_id not in self._settings.accounts[account_id]:
            return envelope(404, f"Job {job_id} was not found.")
        return ok(render_job(account_id, job_id, self._born))

    async def _trigger(self, request: Request, account_id: int) -> Response:
        job_id: int = request.path_params["job_id"]
        if job_id not in self._settings.accounts[account_id]:
            return envelope(404, f"Job {job_id} was not found.")
        body = await read_body(request)
        if isinstance(body, Response):
            return body
        cause = body.get("cause")
        if cause is None or cause == "":
            return envelope(400, INVALID, {"cause": ["This field is required."]})
        if not isinstance(cause, str):
            return envelope(400, INVALID, {"cause": ["Not a valid string."]})
        if errors := option_errors(body):
            return envelope(400, INVALID, errors)
        with self._lock:
            trigger = {name: body.get(name) for name in OVERRIDES}
            return self._create(request, account_id, job_id, cause, trigger)

    async def _rerun(self, request: Request, account_id: int) -> Response:
        """The job's rerun endpoint: the newest run, if it failed, again from the point of
        failure (``rerun_of`` in its trigger says which); otherwise a new run."""
        job_id: int = request.path_params["job_id"]
        if job_id not in self._settings.accounts[account_id]:
            return envelope(404, f"Job {job_id} was not found.")
        with self._lock:
            now = self._clock()
            mine = [r for r in self._runs.values() if r.job_id == job_id]
            newest = max(mine, key=lambda r: r.id) if mine else None
            failed = newest is not None and run_status(newest, now, self._settings) == ERROR
            extra: dict[str, Any] = {name: None for name in OVERRIDES}
            extra["rerun_of"] = newest.id if failed and newest is not None else None
            cause = newest.trigger.get("cause") if newest is not None else None
            cause = cause if isinstance(cause, str) else "Rerun from the API"
            return self._create(request, account_id, job_id, cause, extra, category="rerun")

    def _create(
        self,
        request: Request,
        account_id: int,
        job_id: int,
        cause: str,
        extra: dict[str, Any],
        *,
        category: str = "api",
    ) -> Response:
        """A new run of the job (the lock is held); the trigger echoes ``extra``."""
        project = project_id(account_id)
        base = str(request.base_url).rstrip("/")
        now = self._clock()
        run_id, self._next_id = self._next_id, self._next_id + 1
        trigger = {"id": self._next_trigger_id, "cause": cause, "job_definition_id": job_id}
        trigger |= extra
        trigger["cause_category"] = category
        self._next_trigger_id += 1
        run = EmulatedRun(
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
        return ok(self._render(run, now, as_created=True))

    async def _get_run(self, request: Request, account_id: int) -> Response:
        with self._lock:
            run = self._find_run(request, account_id)
            if run is None:
                return envelope(404, f"Run {request.path_params['run_id']} was not found.")
            return ok(self._render(run, self._clock()))

    async def _cancel(self, request: Request, account_id: int) -> Response:
        """Cancel an active run; a finished one is answered unchanged, as a success."""
        with self._lock:
            run = self._find_run(request, account_id)
            if run is None:
                return envelope(404, f"Run {request.path_params['run_id']} was not found.")
            now = self._clock()
            if self._status(run, now) in ACTIVE:
                run.cancelled = now
                self._schedule(run.account_id, run.job_id)
            return ok(self._render(run, now))

    def _find_run(self, request: Request, account_id: int) -> EmulatedRun | None:
        run = self._runs.get(request.path_params["run_id"])
        return run if run is not None and run.account_id == account_id else None

    async def _list_runs(self, request: Request, account_id: int) -> Response:
        query = parse_list_query(request)
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
        return ok(page, extra=extra)

    def _sort_key(self, run: EmulatedRun, field_name: str, now: float) -> tuple[bool, float, int]:
        """Sort keys for order_by; unfinished runs sort last, as NULLs do in PostgreSQL."""
        if field_name == "created_at":
            return (False, run.created, run.id)
        if field_name == "finished_at":
            finished = finish_time(run, now, self._settings)
            return (finished is None, finished or 0.0, run.id)
        return (False, float(run.id), run.id)

    async def _unknown(self, request: Request, account_id: int) -> Response:
        """What the routes above do not serve: 405 on a known path, else 404."""
        if any(regex.match(request.url.path) for regex in self._api_paths):
            return envelope(405, f'Method "{request.method}" not allowed.')
        return envelope(404, f"Not found: {request.url.path}")
