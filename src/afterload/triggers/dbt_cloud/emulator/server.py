"""Serving the emulator: uvicorn in a background thread (tests, demo) or the foreground (CLI)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from afterload.triggers.dbt_cloud.emulator.app import DbtCloudEmulator
from afterload.triggers.dbt_cloud.emulator.settings import EmulatorSettings

log = logging.getLogger("afterload.dbt.emulator")


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
