"""Which file a path names: a digest of the bytes read, and the inode a path points at.

A source is resumed, and followed across renames, only when it is still the file that was read:
the checkpoint keeps a digest of its first and last bytes before the offset reached.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

DIGEST_SPAN = 256
"""Bytes digested at each end of what was read: enough to tell two files apart."""


def digest_of(fd: int, offset: int) -> str:
    """The digest of a file's first and last ``DIGEST_SPAN`` bytes before ``offset``."""
    span = min(offset, DIGEST_SPAN)
    head = os.pread(fd, span, 0)
    tail = os.pread(fd, span, offset - span)
    return hashlib.blake2b(head + tail, digest_size=8).hexdigest()


def digest_at(path: Path, offset: int) -> str | None:
    """:func:`digest_of` the file at ``path``; None when it cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return digest_of(fd, offset)
    finally:
        os.close(fd)


def names_file(path: Path | None, st: os.stat_result) -> bool:
    """Whether ``path`` still names the file ``st`` describes (a second hard link is no move)."""
    try:
        now = path.stat() if path is not None else None
    except OSError:
        return False
    return now is not None and (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)


SEARCHED = 10_000
"""Directory entries looked at for a vanished file's new name (a bound for huge folders)."""


def grown_elsewhere(where: Path, offset: int, digest: str) -> Path | None:
    """A file in ``where`` whose bytes before ``offset`` have ``digest`` and that holds more:
    a file that vanished from a glob (rotated to a name it does not match) and grew since."""
    try:
        entries = os.scandir(where)
    except OSError:
        return None
    with entries:
        for n, entry in enumerate(entries):
            if n >= SEARCHED:
                break
            try:
                if not entry.is_file() or entry.stat().st_size <= offset:
                    continue
            except OSError:
                continue
            if digest_at(Path(entry.path), offset) == digest:
                return Path(entry.path)
    return None
