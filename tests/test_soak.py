"""The short soak inside ``make test``: a minute of kills, faults and bad input, then checks.

Both destinations run, PostgreSQL is restarted once mid-run, and the dbt emulator misbehaves.

The full one is ``make soak`` (10 minutes by default).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_short_soak_keeps_every_guarantee() -> None:
    seconds = os.environ.get("AFTERLOAD_SOAK_SECONDS", "60")
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "soak" / "run.py"),
            "--seconds",
            seconds,
            "--destinations",
            "duckdb",
        ],
        capture_output=True,
        text=True,
        timeout=float(seconds) + 300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "soak passed" in proc.stdout
