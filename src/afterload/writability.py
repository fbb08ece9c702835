"""Whether this process can write a file at a path, asked before anything is written.

``check`` and ``run`` both ask it (:mod:`afterload.preflight`), so a file ``run`` could not
write fails ``check`` too, and a folder ``run`` would create passes it. A leaf module: the
answer comes from the file system alone (``os.access`` also tells a read-only mount or an
immutable folder, which stop root as well). It does not tell a kernel file system such as
``/proc``, where root may write yet no file can be created (and a file written is a kernel
setting): those are found by the mount table.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Writability:
    """The answer for one path: a problem (a sentence end), or the folders still to create."""

    problem: str | None = None
    creates: Path | None = None
    """The outermost missing folder ``run`` will create, if any."""


_KERNEL_FILE_SYSTEMS = frozenset(
    {
        *("proc", "sysfs", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs"),
        *("configfs", "pstore", "bpf", "efivarfs", "fusectl", "binfmt_misc", "devpts"),
        *("nsfs", "selinuxfs"),
    }
)
_ESCAPE = re.compile(r"\\([0-7]{3})")


def _kernel_file_system(path: Path) -> str | None:
    """The type of the kernel file system ``path`` is on (``proc``, ``sysfs``…), if it is one;
    None elsewhere, and where there is no Linux mount table to read."""
    try:
        table = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    real = os.path.realpath(path)
    found, depth = None, -1
    for line in table.splitlines():
        fields = line.split(" ")
        if "-" not in fields[6:] or len(fields) < 5:
            continue
        point = _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), fields[4])
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= depth:  # the deepest, and of equals the last, is on top
            found, depth = fields[fields.index("-", 6) + 1], len(point)
    return found if found in _KERNEL_FILE_SYSTEMS else None


def _exists(path: Path) -> bool:
    try:
        path.stat()
    except OSError:
        return False
    return True


def writability(path: Path) -> Writability:
    """Can a file at ``path`` be created or appended to, creating missing folders as needed?"""
    kernel = _kernel_file_system(path)
    if kernel is not None:
        return Writability(f"{path} is on the kernel's {kernel} file system, not a place for files")
    if _exists(path):
        if path.is_dir():
            return Writability(f"{path} is a folder, not a file")
        if not os.access(path, os.W_OK):
            return Writability(f"{path} is not writable by this process")
        return Writability()
    folder = path.parent
    missing: Path | None = None
    while not _exists(folder):
        missing, folder = folder, folder.parent
    if not folder.is_dir():
        return Writability(f"{path} cannot be created: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        return Writability(f"{path} cannot be created: the folder {folder} is not writable")
    return Writability(creates=missing)
