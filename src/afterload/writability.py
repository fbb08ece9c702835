"""Whether this process can write a file at a path, asked before anything is written.

``check`` and ``run`` both ask it (:mod:`afterload.preflight`), so a file ``run`` could not
write fails ``check`` too, and a folder ``run`` would create passes it. A leaf module: the
answer comes from the file system alone (``os.access`` also tells a read-only mount or an
immutable folder, which stop root as well).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Writability:
    """The answer for one path: a problem (a sentence end), or the folders still to create."""

    problem: str | None = None
    creates: Path | None = None
    """The outermost missing folder ``run`` will create, if any."""


def _exists(path: Path) -> bool:
    try:
        path.stat()
    except OSError:
        return False
    return True


def writability(path: Path) -> Writability:
    """Can a file at ``path`` be created or appended to, creating missing folders as needed?"""
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
