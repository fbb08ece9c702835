"""Child processes timed from start to exit with their peak RSS, and the pinned venvs they use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from settings import ROOT


@dataclass
class Proc:
    seconds: float
    rss_kib: int
    code: int
    stdout: str
    stderr: str
    killed: str = ""


def tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and its descendants, from /proc."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            for task in (entry.name for entry in Path(f"/proc/{p}/task").iterdir()):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def spawn(
    cmd: Sequence[str], *, cwd: Path | None = None, cap_kib: int = 0, timeout: float = 0
) -> Proc:
    """Run ``cmd``; wall seconds and peak RSS (KiB) of the child via ``os.wait4``.

    A watchdog ends the child if its RSS passes ``cap_kib`` or it runs past ``timeout``, so a
    runaway competitor cannot take the shared machine down.
    """
    env = dict(os.environ, RUNTIME__DLTHUB_TELEMETRY="false", PYTHONUNBUFFERED="1")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, stdout=out, stderr=err, env=env)
        done = threading.Event()
        killed: list[str] = []

        def watch() -> None:
            while not done.wait(0.25):
                rss = tree_rss_kib(proc.pid) if cap_kib else 0
                if cap_kib and rss > cap_kib:
                    killed.append(f"killed at {rss / (1 << 20):.1f} GiB RSS")
                elif timeout and time.perf_counter() - start > timeout:
                    killed.append(f"killed after {timeout:.0f} s")
                else:
                    continue
                proc.kill()
                return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        done.set()
        watcher.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Proc(
            seconds,
            usage.ru_maxrss,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            killed[0] if killed else "",
        )


def ensure_venv(venv: Path, requirements: list[str]) -> Path:
    """A virtual environment with exactly these pinned requirements; its python."""
    python = venv / "bin" / "python"
    stamp = venv / ".bench-requirements"
    want = "\n".join(requirements)
    if python.exists() and stamp.exists() and stamp.read_text() == want:
        return python
    print(f"setting up {venv.relative_to(ROOT)}: {' '.join(requirements)}", flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *requirements], check=True)
    stamp.write_text(want)
    return python


def package_versions(python: Path, names: list[str]) -> dict[str, str]:
    code = (
        "import json, sys\nfrom importlib.metadata import version, PackageNotFoundError\n"
        "out = {}\nfor n in sys.argv[1:]:\n"
        "    try: out[n] = version(n)\n    except PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    res = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True)
    return json.loads(res.stdout) if res.returncode == 0 else {}
