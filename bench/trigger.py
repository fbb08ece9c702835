"""Trigger overhead: bench/bench_trigger.py as it is, in a child process."""

from __future__ import annotations

import sys
from typing import Any

from procs import spawn
from settings import HERE, ROOT


def run_trigger() -> dict[str, Any]:
    print("trigger overhead: bench/bench_trigger.py", flush=True)
    proc = spawn([sys.executable, str(HERE / "bench_trigger.py")], cwd=ROOT)
    output = proc.stdout.rstrip()
    print(output, flush=True)
    verdict = next((ln for ln in output.splitlines() if ln.startswith("bar:")), "")
    return {
        "ok": proc.code == 0,
        "seconds": proc.seconds,
        "output": output if proc.code == 0 else proc.stderr[-2000:],
        "verdict": verdict,
    }
