"""An async client for the few dbt Cloud API v2 endpoints the job trigger needs.

It follows dbt's OpenAPI v2 spec (trailing slashes, the ``status``/``data`` envelope,
``status__in`` as one JSON-style array) and adds what the original connector lacked: a
timeout on every request, retries with backoff that honour ``Retry-After`` (both set in
:mod:`.policy`), one-sentence errors, and a trigger that never creates two runs after an
ambiguous failure.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from afterload import __version__
from afterload.clock import Clock, SystemClock
from afterload.redaction import hide, reason
from afterload.triggers.dbt_cloud.errors import (
    DbtCloudError,
    Transient,
    describe_transport,
    field_messages,
    retry_after_seconds,
    user_message,
)
from afterload.triggers.dbt_cloud.models import ACTIVE_STATUSES, DbtCloudTarget, Job, Run
from afterload.triggers.dbt_cloud.policy import (
    ONE_ATTEMPT,
    RetryPolicy,
    default_timeout,
    interactive_timeout,
    retrying,
)

log = logging.getLogger("afterload.dbt")


class DbtCloudClient:
    """The dbt Cloud endpoints for one account and job; use as an async context manager."""

    def __init__(
        self,
        target: DbtCloudTarget,
        *,
        timeout: httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.base_url = target.base_url
        self.account_id = target.account_id
        self.job_id = target.job_id
        self.retry = retry or RetryPolicy()
        self.clock = clock or SystemClock()
        self.calls = 0
        """HTTP requests sent (metrics)."""
        self.retries = 0
        """Requests repeated after a transient failure (metrics)."""
        self._http = httpx.AsyncClient(
            base_url=f"{self.base_url}/api/v2/accounts/{self.account_id}/",
            timeout=timeout or default_timeout(),
            headers={
                "Authorization": f"Token {target.api_key.get_secret_value()}",
                "Accept": "application/json",
                "User-Agent": f"afterload/{__version__}",
            },
            # dbt answers 308 for a missing slash; we always send it, but follow anyway.
            follow_redirects=True,
        )

    @classmethod
    def interactive(cls, target: DbtCloudTarget) -> DbtCloudClient:
        """One attempt with a short timeout: for commands a user is waiting on."""
        return cls(target, timeout=interactive_timeout(), retry=ONE_ATTEMPT)

    def __repr__(self) -> str:
        return (
            f"DbtCloudClient({self.base_url!r}, account_id={self.account_id}, job_id={self.job_id})"
        )

    async def __aenter__(self) -> DbtCloudClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- endpoints -----------------------------------------------------------------------

    async def get_job(self) -> Job:
        data = await self._call("GET", f"jobs/{self.job_id}/", what=f"job {self.job_id}")
        if not isinstance(data, dict):
            raise self._bad_body(f"jobs/{self.job_id}/")
        return Job.from_api(data, self.job_id)

    async def get_run(self, run_id: int) -> Run:
        data = await self._call("GET", f"runs/{run_id}/", what=f"run {run_id}")
        return self._run(data, f"runs/{run_id}/")

    async def list_runs(
        self,
        *,
        statuses: Sequence[int] | None = None,
        id_gt: int | None = None,
        order_by: str = "-id",
        limit: int = 100,
    ) -> list[Run]:
        params: dict[str, str | int] = {"job_definition_id": self.job_id}
        if statuses is not None:
            params["status__in"] = "[" + ",".join(str(int(s)) for s in statuses) + "]"
        if id_gt is not None:
            params["id__gt"] = id_gt
        params["order_by"] = order_by
        params["limit"] = limit
        data = await self._call("GET", "runs/", params=params, what=f"runs of job {self.job_id}")
        if not isinstance(data, list):
            raise self._bad_body("runs/")
        return [self._run(item, "runs/") for item in data]

    async def list_active_runs(self) -> list[Run]:
        """Queued, starting and running: the original saw only running, so skip piled up."""
        return await self.list_runs(statuses=ACTIVE_STATUSES)

    async def cancel_run(self, run_id: int) -> Run:
        data = await self._call("POST", f"runs/{run_id}/cancel/", what=f"run {run_id}")
        return self._run(data, f"runs/{run_id}/cancel/")

    async def trigger_run(
        self, cause: str, options: Mapping[str, Any] | None = None, *, rerun: bool = False
    ) -> Run:
        """Start one run of the job; never two, whatever the network does.

        ``options`` go verbatim into the body beside ``cause`` (dbt's trigger-run options);
        ``rerun`` posts to the job's rerun endpoint instead, which retries the job's failed
        run from the point of failure (no body: dbt takes none there).

        The POST is not idempotent: after an answer that leaves it unknown whether dbt
        created the run (a timeout, a 5xx, a body that is not JSON), the runs created since
        the newest one seen before the first attempt are listed, and a new one is adopted
        instead of posting again.
        """
        path = f"jobs/{self.job_id}/{'rerun' if rerun else 'run'}/"
        body: dict[str, Any] | None = None if rerun else {"cause": cause, **(options or {})}
        newest = await self.list_runs(limit=1)
        baseline = newest[0].id if newest else 0
        maybe_sent = False
        last: Transient | None = None
        try:
            async for attempt in retrying(self.retry, on_retry=self._count_retry):
                with attempt:
                    if maybe_sent:
                        adopted = await self._find_new_run(baseline, None if rerun else cause)
                        if adopted is not None:
                            log.info("adopted run %d, created by an earlier attempt", adopted.id)
                            return adopted
                    try:
                        data = await self._once("POST", path, json_body=body)
                    except Transient as exc:
                        last = exc
                        maybe_sent = maybe_sent or exc.sent
                        raise
                    return self._run(data, path)
        except Transient as exc:
            last = exc
        assert last is not None
        # One last look: the run may exist although every answer was lost.
        if maybe_sent:
            try:
                adopted = await self._find_new_run(baseline, None if rerun else cause)
            except (Transient, DbtCloudError):
                adopted = None
            if adopted is not None:
                return adopted
        raise self._gave_up(path, last)

    async def wait_for_run(self, run_id: int, timeout: float, poll: float = 10.0) -> Run:
        """Poll until the run ends or ``timeout`` passes; returns the last state seen.

        Polls start at 1 s and double up to ``poll``: short runs end promptly, long ones
        cost few requests.
        """
        deadline = self.clock.monotonic() + timeout
        delay = min(1.0, poll)
        while True:
            run = await self.get_run(run_id)
            if not run.is_active:
                return run
            left = deadline - self.clock.monotonic()
            if left <= 0:
                return run
            await self.clock.sleep(min(delay, left))
            delay = min(delay * 2, poll)

    def run_url(self, run: Run) -> str:
        if run.href:
            return run.href
        project = run.project_id
        if project:
            return f"{self.base_url}/deploy/{self.account_id}/projects/{project}/runs/{run.id}/"
        return f"{self.base_url}/api/v2/accounts/{self.account_id}/runs/{run.id}/"

    # -- plumbing ------------------------------------------------------------------------

    async def _find_new_run(self, baseline: int, cause: str | None) -> Run | None:
        """The newest run created since ``baseline`` with our ``cause`` (None: any cause, for
        a rerun, whose cause dbt writes)."""
        runs = await self._call_once_retrying_nothing(baseline)
        mine = [r for r in runs if cause is None or r.cause in (None, cause)]
        return max(mine, key=lambda r: r.id) if mine else None

    async def _call_once_retrying_nothing(self, baseline: int) -> list[Run]:
        data = await self._once(
            "GET",
            "runs/",
            params={"job_definition_id": self.job_id, "id__gt": baseline, "order_by": "-id"},
        )
        if not isinstance(data, list):
            raise Transient("the list of runs was not a list")
        return [Run.from_api(item) for item in data if isinstance(item, dict) and "id" in item]

    def _count_retry(self) -> None:
        self.retries += 1

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        what: str,
    ) -> Any:
        """An idempotent call (GET, or a cancel): retried on every transient failure."""
        last: Transient | None = None
        try:
            async for attempt in retrying(self.retry, on_retry=self._count_retry):
                with attempt:
                    try:
                        return await self._once(method, path, params=params, what=what)
                    except Transient as exc:
                        last = exc
                        if self.retry.attempts == 1:
                            raise  # the error says it all; no "attempt 1 of 1"
                        log.warning(
                            "dbt Cloud %s %s: %s (attempt %d of %d)",
                            method,
                            self._endpoint(path),
                            exc.detail,
                            attempt.num,
                            self.retry.attempts,
                        )
                        raise
        except Transient as exc:
            last = exc
        assert last is not None
        raise self._gave_up(path, last)

    async def _once(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        json_body: dict[str, Any] | None = None,
        what: str | None = None,
    ) -> Any:
        content = None
        headers = {}
        if json_body is not None:
            # A JSON encoder, never string formatting: a quote in the cause stays a quote.
            content = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        self.calls += 1
        try:
            response = await self._http.request(
                method, path, params=params, content=content, headers=headers
            )
        except httpx.TransportError as exc:
            sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            raise Transient(describe_transport(exc), sent=sent) from None
        code = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if code == 429:
            raise Transient(
                "429 Too Many Requests", retry_after=retry_after_seconds(response), sent=False
            )
        if code == 408 or code >= 500:
            raise Transient(
                f"{code} {reason(code)}".strip(), retry_after=retry_after_seconds(response)
            )
        if code >= 400:
            raise self._client_error(code, body, path, what)
        if not isinstance(body, dict) or "data" not in body:
            kind = self._hide(response.headers.get("content-type", "no content type"))
            raise Transient(f"{code} with a body that is not dbt's JSON envelope ({kind})")
        status = body.get("status")
        if isinstance(status, dict) and status.get("is_success") is False:
            raise self._client_error(int(status.get("code") or 400), body, path, what)
        return body["data"]

    def _endpoint(self, path: str) -> str:
        return f"{self.base_url}/api/v2/accounts/{self.account_id}/{path}"

    def _client_error(self, code: int, body: Any, path: str, what: str | None) -> DbtCloudError:
        msg = user_message(body)
        detail = f" ({code}: {msg})" if msg else f" ({code})"
        if code == 401:
            text = (
                f"dbt Cloud rejected the API key for account {self.account_id} at "
                f"{self.base_url}{detail}; check api_key, and that access_url is the "
                "account's own access URL (Account Settings)"
            )
        elif code == 403:
            text = (
                f"dbt Cloud refused access to account {self.account_id} at {self.base_url}"
                f"{detail}; the token needs the Job Admin permission, or an IP restriction "
                "applies"
            )
        elif code == 404:
            thing = what or path
            if thing.startswith("job") or thing.startswith("runs of job"):
                thing = f"job {self.job_id}"
            text = (
                f"{thing} was not found in account {self.account_id} at "
                f"{self.base_url}{detail}; check job_id and account_id"
            )
        elif code == 400:
            text = f"dbt Cloud rejected the request {self._endpoint(path)}: {field_messages(body)}"
        else:
            text = f"dbt Cloud answered {self._endpoint(path)} with {code}{detail}"
        return DbtCloudError(self._hide(text), fatal=True, status_code=code)

    def _hide(self, text: str) -> str:
        """A server may echo the request's Authorization header in its answer: never the
        key, in any case or cut short."""
        return hide(text, [self._http.headers.get("Authorization", "").removeprefix("Token ")])

    def _gave_up(self, path: str, last: Transient) -> DbtCloudError:
        tries = f" (after up to {self.retry.attempts} attempts)" if self.retry.attempts > 1 else ""
        return DbtCloudError(
            f"dbt Cloud at {self._endpoint(path)} could not be used: "
            f"{self._hide(last.detail)}{tries}",
            fatal=False,
        )

    def _bad_body(self, path: str) -> DbtCloudError:
        return DbtCloudError(
            f"dbt Cloud answered {self._endpoint(path)} with an unexpected body", fatal=False
        )

    def _run(self, data: Any, path: str) -> Run:
        try:
            return Run.from_api(data)
        except ValueError:
            raise self._bad_body(path) from None
