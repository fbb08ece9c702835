"""The ``afterload`` command line: one module per command group, each wiring parts together,
printing, and mapping errors to exit codes. Nothing below the CLI imports it."""

from __future__ import annotations

import sys

from afterload.cli import check, demo, emulator, flow, run, runs, spec, status, trigger
from afterload.cli.app import app, err

__all__ = [
    "app",
    "check",
    "demo",
    "emulator",
    "flow",
    "main",
    "run",
    "runs",
    "spec",
    "status",
    "trigger",
]


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
