"""A stand-in for Flow's runtime: drives a connector child process over pipes.

It sends requests in exactly the order the runtime does — Open, the recovery Acknowledge,
then per transaction Loads, Flush, Stores, StartCommit and Acknowledge — and, like the
runtime, pipelines: the next transaction's Loads go out right after Acknowledge, before the
connector's Acknowledged is read. Keys and values travel only packed (``keyPacked``,
``valuesPacked``) as the runtime sends them. The child can be SIGKILLed at any point.

Usage (phase 2 runs it against DuckDB and PostgreSQL)::

    with Standin.spawn(["python", "-m", "afterload", "flow-connector"]) as rt:
        checkpoint = rt.open(materialization, key_begin=0, key_end=0xFFFFFFFF)
        rt.acknowledge(); rt.expect_acknowledged()
        loaded = rt.transaction(loads=[(0, [1])], stores=[Doc(0, [1], [...], {...})],
                                checkpoint={"sources": {...}})
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from afterload.flow.tuples import pack_b64

#: The connector command of phase 2.
CONNECTOR = [sys.executable, "-m", "afterload", "flow-connector"]


class StandinError(AssertionError):
    """The connector answered something the runtime would not accept."""


@dataclass(frozen=True)
class Doc:
    """One Store: binding, key and values (JSON values, packed on send), the document."""

    binding: int
    key: Sequence[Any]
    values: Sequence[Any]
    doc: Any
    exists: bool = False
    delete: bool = False


@dataclass
class Standin:
    process: subprocess.Popen[bytes]
    stderr_lines: list[str] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    timeout: float = 30.0

    # --- process ---------------------------------------------------------------------------

    @classmethod
    def spawn(
        cls,
        argv: Sequence[str] = CONNECTOR,
        env: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Standin:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        standin = cls(process=process, timeout=timeout)
        threading.Thread(target=standin._drain_stderr, daemon=True).start()
        return standin

    def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self.stderr_lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def kill(self) -> None:
        """SIGKILL the child now, wherever it is, and reap it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(self.timeout)

    def close(self) -> int:
        """Close stdin (the runtime's clean stop) and wait for the exit code."""
        assert self.process.stdin is not None
        if not self.process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        return self.process.wait(self.timeout)

    def __enter__(self) -> Standin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    # --- wire ------------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        stdin: IO[bytes] | None = self.process.stdin
        assert stdin is not None
        self.sent.append(message)
        stdin.write(json.dumps(message, ensure_ascii=False).encode() + b"\n")
        stdin.flush()

    def receive(self) -> tuple[str, dict[str, Any]]:
        """The next response as (key, body); fails if the child closed stdout."""
        stdout = self.process.stdout
        assert stdout is not None
        line = _readline(stdout, self.timeout)
        if not line:
            code = self.process.wait(self.timeout)
            raise StandinError(f"connector exited ({code}): {self.stderr_tail()}")
        message = json.loads(line)
        if not isinstance(message, dict) or len(message) != 1:
            raise StandinError(f"response must set exactly one field: {line!r}")
        ((key, body),) = message.items()
        return key, body

    def expect(self, key: str) -> dict[str, Any]:
        got, body = self.receive()
        if got != key:
            raise StandinError(f"expected {key}, got {got}: {body}")
        return body

    def stderr_tail(self, lines: int = 5) -> str:
        return " | ".join(self.stderr_lines[-lines:])

    # --- protocol steps --------------------------------------------------------------------

    def open(
        self,
        materialization: dict[str, Any],
        *,
        key_begin: int = 0,
        key_end: int = 0xFFFFFFFF,
        version: str = "v1",
        state: Any = None,
    ) -> dict[str, Any] | None:
        """Send Open, read Opened, return its runtimeCheckpoint (None if absent)."""
        open_: dict[str, Any] = {
            "materialization": materialization,
            "version": version,
            "range": {"keyBegin": key_begin, "keyEnd": key_end, "rClockEnd": 0xFFFFFFFF},
            "state": state if state is not None else {},
        }
        self.send({"open": open_})
        opened = self.expect("opened")
        checkpoint: dict[str, Any] | None = opened.get("runtimeCheckpoint")
        return checkpoint

    def acknowledge(self) -> None:
        self.send({"acknowledge": {}})

    def expect_acknowledged(self) -> dict[str, Any]:
        return self.expect("acknowledged")

    def loads(self, keys: Iterable[tuple[int, Sequence[Any]]]) -> None:
        for binding, key in keys:
            self.send({"load": {"binding": binding, "keyPacked": pack_b64(key)}})

    def flush(self, *, acknowledged_pending: bool) -> list[tuple[int, Any]]:
        """Send Flush (reading the pending Acknowledged first, as the runtime must), then
        collect Loaded until Flushed."""
        if acknowledged_pending:
            self.expect_acknowledged()
        self.send({"flush": {}})
        loaded: list[tuple[int, Any]] = []
        while True:
            key, body = self.receive()
            if key == "flushed":
                return loaded
            if key != "loaded":
                raise StandinError(f"expected loaded or flushed, got {key}: {body}")
            loaded.append((int(body.get("binding", 0)), body["doc"]))

    def stores(self, docs: Iterable[Doc]) -> None:
        for d in docs:
            store: dict[str, Any] = {
                "binding": d.binding,
                "keyPacked": pack_b64(d.key),
                "valuesPacked": pack_b64(d.values),
                "doc": d.doc,
            }
            if d.exists:
                store["exists"] = True
            if d.delete:
                store["delete"] = True
            self.send({"store": store})

    def start_commit(self, checkpoint: dict[str, Any]) -> dict[str, Any]:
        self.send({"startCommit": {"runtimeCheckpoint": checkpoint}})
        return self.expect("startedCommit")

    def transaction(
        self,
        *,
        loads: Sequence[tuple[int, Sequence[Any]]],
        stores: Sequence[Doc],
        checkpoint: dict[str, Any],
        acknowledged_pending: bool = True,
        next_loads: Sequence[tuple[int, Sequence[Any]]] = (),
    ) -> list[tuple[int, Any]]:
        """One whole transaction after the previous Acknowledge was sent.

        Sends ``loads`` (pipelined: before the previous Acknowledged is read), Flush,
        ``stores``, StartCommit, then Acknowledge and ``next_loads`` (the next transaction's
        pipelined Loads). Returns the Loaded documents of this transaction.
        """
        self.loads(loads)
        loaded = self.flush(acknowledged_pending=acknowledged_pending)
        self.stores(stores)
        self.start_commit(checkpoint)
        self.acknowledge()
        self.loads(next_loads)
        return loaded


def _readline(stream: IO[bytes], timeout: float) -> bytes:
    """readline with a deadline, so a hung connector fails the test instead of hanging it."""
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        raise StandinError(f"no response within {timeout}s")
    return result[0]


def checkpoint(
    n: int, journal: str = "acmeCo/source/pivot=00;materialize/acmeCo/m/t.v1"
) -> dict[str, Any]:
    """A runtime checkpoint shaped as the runtime writes it (int64 as strings)."""
    return {"sources": {journal: {"readThrough": str(n)}}}


def materialization(
    name: str,
    bindings: Sequence[dict[str, Any]],
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A MaterializationSpec for Open: ``bindings`` from :func:`binding`."""
    return {
        "name": name,
        "connectorType": "IMAGE",
        "config": config or {},
        "bindings": list(bindings),
    }


def binding(
    collection: str,
    resource: dict[str, Any],
    *,
    keys: Sequence[str],
    values: Sequence[str],
    document: str = "flow_document",
    delta_updates: bool = False,
    projections: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """One binding of a MaterializationSpec, with its field selection."""
    return {
        "resourceConfig": resource,
        "resourcePath": [resource.get("schema"), resource["table"]]
        if resource.get("schema")
        else [resource["table"]],
        "collection": {
            "name": collection,
            "key": ["/" + k for k in keys],
            "projections": list(projections),
        },
        "fieldSelection": {"keys": list(keys), "values": list(values), "document": document},
        "deltaUpdates": delta_updates,
        "stateKey": resource["table"] + ".v1",
    }
