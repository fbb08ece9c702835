"""Rejected lines, kept exactly once alongside the checkpoint.

A transaction's rejects are appended and fsynced *before* the destination commit, and the
checkpoint records the rejects file's size after them. Opening a materialization truncates
the file back to the committed size: a crash between the append and the commit leaves lines
that belong to an uncommitted transaction, which will be read (and rejected) again, so they
must go. A file smaller than recorded was rotated or emptied by someone; it is left alone.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import orjson

from afterload.errors import AfterloadError

log = logging.getLogger("afterload.rejects")


def reject_entry(source: str, line: int, reason: str, raw: bytes) -> bytes:
    """One NDJSON line: the raw text is kept as text, invalid UTF-8 replaced, never dropped."""
    return orjson.dumps(
        {
            "source": source,
            "line": line,
            "reason": reason,
            "document": raw.decode("utf-8", errors="replace"),
        }
    )


class RejectsFile:
    def __init__(self, path: Path, display: str) -> None:
        self.path = path
        self.display = display

    def size(self) -> int:
        """Its size; 0 when it does not exist yet (or cannot, which :meth:`append` says)."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def _failed(self, exc: OSError) -> AfterloadError:
        reason = exc.strerror or type(exc).__name__
        return AfterloadError(f"{self.display}: cannot write the rejects file ({reason})")

    def recover(self, committed: int) -> None:
        """Drop what an uncommitted transaction appended."""
        size = self.size()
        if size > committed:
            try:
                with open(self.path, "r+b") as f:
                    f.truncate(committed)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:
                raise self._failed(exc) from None
            log.info(
                "%s: removed %d bytes of rejects from an uncommitted transaction",
                self.display,
                size - committed,
            )
        elif size < committed:
            log.warning(
                "%s is smaller than when last committed (rotated?); appending to it as it is",
                self.display,
            )

    def append(self, entries: list[bytes]) -> int:
        """Append durably; returns the new size for the checkpoint."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as f:
                if entries:
                    f.write(b"\n".join(entries) + b"\n")
                    f.flush()
                    os.fsync(f.fileno())
                return f.tell()
        except OSError as exc:
            raise self._failed(exc) from None
