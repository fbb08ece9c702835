"""A server that echoes what it was sent — in its reason phrase, in another case, cut short —
never gets our secrets into a message. Real loopback HTTP from a raw socket server, since no
framework lets a handler choose the reason phrase."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from afterload.redaction import hide
from afterload.triggers.dbt_cloud.client import DbtCloudClient
from afterload.triggers.dbt_cloud.config import DbtJobTrigger
from afterload.triggers.dbt_cloud.errors import DbtCloudError
from afterload.triggers.webhook.config import WebhookTrigger
from afterload.triggers.webhook.delivery import RetryPolicy, deliver, make_client
from tests.conftest import ACCOUNT, FAST_RETRY, JOB
from tests.test_webhook_delivery import variables, window

KEY = "Zq7SecretKey4711"
PATH = "/hooks/PathIsTheSecret99"


class EchoServer:
    """Answers every request with ``status``, a reason phrase quoting its Authorization (or
    X-Api-Key) header, and a body quoting it lower-cased, cut short and with the path."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> EchoServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._answer, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()
        server.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        lines = head.split("\r\n")
        path = lines[0].split(" ")[1]
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
        length = int(headers.get("content-length", "0") or 0)
        if length:
            await reader.readexactly(length)
        said = headers.get("authorization") or headers.get("x-api-key") or ""
        body = f"denied {said.lower()} / {said[:-1]} at {path}".encode()
        writer.write(
            f"HTTP/1.1 {self.status} Oops {said}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1")
            + body
        )
        await writer.drain()
        writer.close()


@pytest.fixture(params=[500, 401, 403, 408])
def echo(request: pytest.FixtureRequest) -> Iterator[EchoServer]:
    with EchoServer(request.param) as server:
        yield server


def _leaks(text: str, secret: str) -> list[str]:
    low = text.casefold()
    return [p for p in (secret, secret[:-1], secret[1:]) if p.casefold() in low]


async def test_dbt_cloud_messages_never_echo_the_key(
    echo: EchoServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="afterload")
    settings = DbtJobTrigger.model_validate(
        {"access_url": echo.url, "account_id": ACCOUNT, "job_id": JOB, "api_key": KEY}
    )
    async with DbtCloudClient(settings.target(), retry=FAST_RETRY) as c:
        with pytest.raises(DbtCloudError) as info:
            await c.get_job()
    text = str(info.value) + "\n" + caplog.text
    assert str(echo.status) in str(info.value)
    assert _leaks(text, KEY) == []


async def test_webhook_messages_never_echo_a_header_or_the_path(
    echo: EchoServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="afterload")
    trigger = WebhookTrigger.model_validate(
        {
            "url": f"{echo.url}{PATH}",
            "headers": {"Authorization": f"Bearer {KEY}"},
            "payloadTemplate": '{"n": "{{run_id}}"}',
            "maxAttempts": 2,
        }
    )
    policy = RetryPolicy(wait_initial=0.01, wait_max=0.02, max_retry_after=5.0)
    async with make_client(trust_env=False) as client:
        result = await deliver("w", trigger, variables(window(1)), client=client, policy=policy)
    assert not result.delivered and f"answered {echo.status}" in result.message
    text = result.message + "\n" + caplog.text
    assert _leaks(text, KEY) == [] and _leaks(text, PATH) == []


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Token ABCDEFGH1234 here", "Token (hidden) here"),
        ("abcdefgh1234", "(hidden)"),
        ("key=ABCDEFGH123", "(hidden)"),  # cut short, inside a longer word
        ("BCDEFGH1234!", "(hidden)"),
        ("short ABC and a-longer-word-here", "short ABC and a-longer-word-here"),
    ],
)
def test_hide_takes_any_case_and_any_piece_of_eight(text: str, shown: str) -> None:
    assert hide(text, ["ABCDEFGH1234"]) == shown


def test_short_values_are_no_secret() -> None:
    assert hide("version 1 of 1", ["1"]) == "version 1 of 1"


def test_debug_logging_keeps_http_libraries_quiet() -> None:
    """httpx logs every request's URL (a webhook's path is its secret) and the server's
    reason phrase at INFO: even ``-v`` shows them only from WARNING."""
    import logging

    from afterload.cli.logs import setup_logging

    root = logging.getLogger()
    saved = (root.level, root.handlers[:])
    try:
        setup_logging("debug")
        assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
        assert logging.getLogger("httpcore").getEffectiveLevel() == logging.WARNING
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]


def test_a_hung_dbt_cloud_does_not_hold_back_the_first_commit(tmp_path: Path) -> None:
    """The run's start-up check of the job is one short attempt: with a dbt Cloud that
    accepts connections and never answers, the first commit came after the retries' two
    minutes; now after the check's few seconds (the margin here is generous)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    port = listener.getsockname()[1]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "1.jsonl").write_text('{"id": 1}\n')
    (tmp_path / "c.yaml").write_text(
        "name: hung\n"
        "destination: {duckdb: {path: w.duckdb}}\n"
        "bindings: [{source: data/*.jsonl, table: t, key: [/id]}]\n"
        f"dbt_job_trigger: {{access_url: 'http://127.0.0.1:{port}', account_id: 1, "
        f"job_id: 2, api_key: '{KEY}'}}\n"
    )
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "afterload", "run", "c.yaml"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "committed transaction" in line:
                break
        took = time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        listener.close()
        for conn in held:
            conn.close()
    assert any("committed transaction" in line for line in lines), "".join(lines)
    assert took < 45, f"the first commit waited {took:.0f} s for dbt Cloud"
    assert any("materializing anyway" in line for line in lines), "".join(lines)
