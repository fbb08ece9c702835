"""The emulator's HTTP surface: dbt's envelope, auth, request bodies and queries, faults."""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from afterload.triggers.dbt_cloud.emulator.settings import Fault

ORDERINGS = ("id", "created_at", "finished_at")
MAX_LIMIT = 100
INVALID = "The request was invalid. Please double check the provided data and try again."
SEND_KEY = "afterload.emulator.send"  # the server's own `send`, kept so a fault can drop it


def auth_scheme(header: str | None) -> str | None:
    """The scheme word only: a bare key sent without one must not reach the log."""
    if header is None:
        return None
    scheme = header.split(" ", 1)[0]
    return scheme if scheme.lower() in ("token", "bearer") else "other"


def token_ok(header: str | None, api_key: str) -> bool:
    scheme, _, key = (header or "").partition(" ")
    if scheme.lower() not in ("token", "bearer"):
        return False
    return hmac.compare_digest(key.strip().encode(), api_key.encode())


def envelope(
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


def ok(data: Any, *, extra: dict[str, Any] | None = None) -> JSONResponse:
    return envelope(200, "Success!", data, extra=extra)


def fault_response(fault: Fault) -> Response:
    status = fault.status or 500
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
    if fault.body is not None:
        return Response(fault.body, status, headers=headers, media_type=fault.content_type)
    return envelope(status, f"Injected fault: HTTP {status}.", headers=headers)


async def drop_connection(request: Request) -> bool:
    """Abort the TCP connection under this request, so no response bytes are ever sent.

    Uvicorn exposes no transport to the app; its h11 ``send`` is a method of an object holding
    it. The client sees the connection closed before any answer (httpx: RemoteProtocolError).
    """
    send = request.scope.get(SEND_KEY)
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if not isinstance(transport, asyncio.Transport):
        return False
    transport.abort()
    for _ in range(2):  # let uvicorn see the loss, so the reply we return is discarded
        await asyncio.sleep(0)
    return True


async def read_body(request: Request) -> dict[str, Any] | Response:
    """The trigger body, from JSON or a urlencoded form; an empty body is an empty object."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    if content_type.startswith("multipart/"):
        return envelope(415, "Unsupported media type: the emulator reads JSON or forms.")
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return envelope(400, INVALID, {"detail": f"JSON parse error - {exc}"})
    if not isinstance(data, dict):
        message = f"Invalid data. Expected a dictionary, but got {type(data).__name__}."
        return envelope(400, INVALID, {"non_field_errors": [message]})
    return data


def parse_list_query(request: Request) -> dict[str, Any] | Response:
    """List Runs' query parameters, checked as dbt does; unknown ones are ignored."""
    params = request.query_params
    query: dict[str, Any] = {"limit": MAX_LIMIT, "offset": 0}
    errors: dict[str, Any] = {}
    for name in ("job_definition_id", "status", "id__gt", "limit", "offset"):
        value = params.get(name)
        if value is None:
            continue
        try:
            query[name] = int(value)
        except ValueError:
            errors[name] = ["A valid integer is required."]
    if not 1 <= query["limit"] <= MAX_LIMIT:
        errors["limit"] = [f"Ensure this value is between 1 and {MAX_LIMIT}."]
    if query["offset"] < 0:
        errors["offset"] = ["Ensure this value is greater than or equal to 0."]
    raw_status_in = params.get("status__in")
    if raw_status_in is not None:
        statuses = int_list(raw_status_in)
        if statuses is None:
            errors["status__in"] = f"'{raw_status_in}' is not valid under any of the given schemas"
        else:
            query["status__in"] = statuses
    order = params.get("order_by", "id")
    if order.lstrip("-") not in ORDERINGS or order.count("-") > 1:
        errors["order_by"] = [f"Ordering must be one of {', '.join(ORDERINGS)}, optionally -."]
    query["order_by"] = order
    if errors:
        return envelope(400, INVALID, errors)
    return query


def int_list(text: str) -> list[int] | None:
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


async def http_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return envelope(exc.status_code, str(exc.detail))
    return envelope(500, "Internal server error.")
