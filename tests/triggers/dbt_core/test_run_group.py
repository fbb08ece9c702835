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


def test_what_dbt_started_dies_with_afterload_killed(tmp_path: Path) -> None:
    """afterload SIGKILLed: its dbt child gets SIGTERM (PR_SET_PDEATHSIG), and the guard that
    starts it takes the whole group, so a process a Python model started does not live on
    (before, it was left under PID 1)."""
    import os
    import signal
    import subprocess
    import time

    from afterload.triggers.dbt_core.process import ORPHAN_GUARD

    pidfile = tmp_path / "grandchild.pid"
    child = (
        ORPHAN_GUARD + "; import subprocess, time; "
        "p = subprocess.Popen(['sleep', '300']); "
        f"open({str(pidfile)!r}, 'w').write(str(os.getpgid(0))); "
        "time.sleep(300)"
    )
    afterload = (  # stands in for afterload: starts the child as the runner does, then waits
        "import subprocess, sys, time; "
        "from afterload.triggers.dbt_core.run import die_with_parent; "
        f"subprocess.Popen([sys.executable, '-c', {child!r}], start_new_session=True, "
        "preexec_fn=die_with_parent); time.sleep(300)"
    )
    parent = subprocess.Popen([sys.executable, "-c", afterload], env={**os.environ})
    try:
        deadline = time.monotonic() + 30
        while not pidfile.exists() or not pidfile.read_text():
            assert time.monotonic() < deadline, "the grandchild never started"
            time.sleep(0.05)
        group = int(pidfile.read_text())  # the child leads its group, the grandchild in it
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while not gone(group):
            assert time.monotonic() < deadline, "the grandchild outlived afterload"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()
