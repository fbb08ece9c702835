"""A run's result comes only once its whole process group is gone (no dbt needed).

The child here stands in for dbt: it starts a helper in its own group (as dbt starts
multiprocessing's resource tracker) and exits. The helper holds 1 GiB, so after SIGKILL it
takes tens of milliseconds to end: a result returned right after the signal would see it alive.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from afterload.triggers.dbt_core.run import DbtRun
from tests.triggers.dbt_core.conftest import gone

_HELPER = (
    "b = bytearray(1 << 30); b[::4096] = b'x' * len(range(0, len(b), 4096)); "
    "print('ready', flush=True); import time; time.sleep(60)"
)
_PARENT = (  # waits until the helper touched its memory, then exits: the helper stays behind
    "import subprocess, sys; "
    f"h = subprocess.Popen([sys.executable, '-c', {_HELPER!r}], "
    "stdout=subprocess.PIPE, stderr=subprocess.DEVNULL); h.stdout.readline()"
)


async def test_the_result_waits_until_the_group_left_behind_is_gone(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _PARENT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    run = DbtRun(proc, "build", tmp_path, [])
    run.task = asyncio.create_task(run._watch(timeout=60, grace=5))
    result = await run.result()
    assert result.outcome == "success"
    assert gone(run.pid)
