"""``afterload run``: signals, the progress display, printing and exit codes around
:func:`afterload.pipeline.materialize`, which does the work."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from afterload.cli import logs
from afterload.cli.app import ConfigArg, app, err, load, say_error, wait_seconds
from afterload.errors import AfterloadError

if TYPE_CHECKING:
    from afterload.clock import Clock
    from afterload.config.load import LoadedConfig
    from afterload.core.stopper import Stopper
    from afterload.pipeline import Report

log = logging.getLogger("afterload.runtime")

#: ``--wait`` exit codes, as ``trigger --wait``.
EXIT_CODES = {"success": 0, "error": 1, "cancelled": 2, "timeout": 3}


@contextmanager
def _signals(stopper: Stopper) -> Iterator[None]:
    """SIGINT/SIGTERM ask for a clean stop; a second SIGINT interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stopper.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.info("%s: committing what was read, then stopping", name)
        stopper.request(name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def exit_code(report: Report, *, once: bool) -> int:
    """0 done; 1 when the final fire failed; with ``--wait`` the codes of ``trigger --wait``."""
    if once and any(f.kind == "failed" for f in report.fires):
        return 1
    if report.waited is not None:
        return EXIT_CODES[report.waited.result]
    return 0


def run_materialization(
    loaded: LoadedConfig,
    *,
    once: bool,
    wait: bool = False,
    timeout: float | None = None,
    console: Console | None = None,
    clock: Clock | None = None,
    stopper: Stopper | None = None,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
) -> int:
    """``afterload run``: the exit code (0 done, 1 on an error, ``--wait`` codes as ``trigger``)."""
    # The pipeline loads here, not when the command line is built (ARCHITECTURE.md, start-up).
    from afterload.core.stopper import Stopper
    from afterload.ndjson.progress import Progress
    from afterload.pipeline import materialize

    out = console or Console(stderr=True, markup=False)
    stopper = stopper or Stopper()
    metrics = None
    try:
        if metrics_port is not None:
            from afterload.clock import SystemClock
            from afterload.metrics import RunMetrics

            metrics = RunMetrics(now=(clock or SystemClock()).wall)
            metrics.serve(metrics_port, metrics_host)
        with _signals(stopper):
            report = materialize(
                loaded,
                once=once,
                wait=wait,
                timeout=timeout,
                clock=clock,
                stopper=stopper,
                progress=Progress(None if logs.logging_json() else out),
                metrics=metrics,
            )
    except AfterloadError as exc:
        say_error(str(exc), out)
        return exc.exit_code
    finally:
        if metrics is not None:
            metrics.close()
    if once:
        log.info(report.summary(), extra={"counts": report.counts()})
    if report.waited is not None:
        out.print(report.waited.message, highlight=False)
    return exit_code(report, once=once)


@app.command()
def run(
    config: ConfigArg,
    once: Annotated[
        bool, typer.Option("--once", help="Read what is there, commit, fire once, exit.")
    ] = False,
    wait: Annotated[bool, typer.Option(help="With --once: wait for the dbt run to end.")] = False,
    timeout: Annotated[str, typer.Option(help="How long --wait waits, e.g. 30m, 1h.")] = "1h",
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            help="Serve Prometheus metrics at http://HOST:PORT/metrics while running.",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="The address --metrics-port listens on.")
    ] = "127.0.0.1",
) -> None:
    """Materialize the config's bindings into its destination until SIGINT or SIGTERM.

    Fires the dbt job at start and after commits that stored documents; with --once, once at
    the end, if it committed data (or, for on_start: pending and dbt Core, if data is owed).
    With --once, exit 0 when done, 1 on an error; with --wait the exit codes are those of
    `trigger --wait`.
    """
    if wait and not once:
        err.print(
            "[red]error:[/red] --wait needs --once: "
            "a follow run never ends with a run to wait for.",
            markup=True,
        )
        raise typer.Exit(2)
    wait_for = wait_seconds(timeout)
    loaded = load(config)
    raise typer.Exit(
        run_materialization(
            loaded,
            once=once,
            wait=wait,
            timeout=wait_for,
            console=err,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
        )
    )
