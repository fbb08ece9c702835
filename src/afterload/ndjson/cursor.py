"""One file (or stdin) read in chunks of whole lines, resumed by byte offset, checked to be the
file committed before each read."""

from __future__ import annotations

import logging
import os
import select
import sys
from dataclasses import dataclass
from pathlib import Path

from afterload.core.checkpoint import FilePosition
from afterload.errors import AfterloadError
from afterload.ndjson.identity import DIGEST_SPAN, digest_of

log = logging.getLogger("afterload.sources")

Position = FilePosition
"""How far a file has been read: bytes and complete lines consumed."""

STDIN = "-"
BLOCK = 1 << 20
MAX_LINE_BYTES = 256 << 20
"""A line longer than this is refused rather than buffered without bound."""


class SourceError(AfterloadError):
    """A source that cannot be read as recorded: truncated, replaced, unreadable."""


@dataclass(slots=True)
class Chunk:
    source: str
    first_line: int
    data: bytes
    """The chunk's lines as read, joined by newlines (without the last one): a destination
    that reads JSON itself stages them as they are, and Python need not split them."""
    count: int
    """How many lines (blank ones included)."""
    end: Position
    nbytes: int

    @property
    def lines(self) -> list[bytes]:
        """The lines, split (each call splits again: take it once)."""
        return self.data.split(b"\n")


class LineTooLong(SourceError):
    def __init__(self, source: str, line: int) -> None:
        self.source, self.line = source, line
        super().__init__(f"{source}:{line}: the line is longer than {MAX_LINE_BYTES >> 20} MiB")


class Cursor:
    """One file (or stdin) and how far it has been handed out."""

    def __init__(self, display: str, path: Path | None, position: Position) -> None:
        self.display = display
        self.path = path
        self.position = position
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf known to hold no newline
        self._fd: int | None = None
        self.eof = False  # stdin closed: nothing more will ever come
        self.pending = False  # a partial last line is buffered
        self.moved = False  # the path names another file now: the source looks for this one
        self._head = b""  # the file's first bytes, as read
        self._tail = b""  # the last bytes read, just before the descriptor's offset

    def _open(self) -> int:
        if self._fd is None:
            if self.path is None:
                self._fd = sys.stdin.fileno()
            else:
                try:
                    fd = os.open(self.path, os.O_RDONLY)
                except OSError as exc:
                    raise SourceError(f"{self.display}: cannot open ({exc.strerror})") from None
                size = os.fstat(fd).st_size
                if size < self.position.offset:
                    os.close(fd)
                    raise SourceError(
                        f"{self.display}: the file has {size} bytes but {self.position.offset} "
                        "were already committed; was it truncated or replaced?"
                    )
                digest = self.position.digest
                if digest and digest_of(fd, self.position.offset) != digest:
                    os.close(fd)
                    raise SourceError(
                        f"{self.display}: the bytes before offset {self.position.offset}, "
                        "where the last commit stopped, are not the ones committed: the file "
                        "was replaced; new data needs a new file name, or its lines before "
                        "that offset would be skipped"
                    )
                os.lseek(fd, self.position.offset, os.SEEK_SET)
                span = min(self.position.offset, DIGEST_SPAN)
                self._head = os.pread(fd, span, 0)
                self._tail = os.pread(fd, span, self.position.offset - span)
                self._fd = fd
        return self._fd

    def committed(self) -> Position:
        """The position with the digest of the bytes before it, computed on the descriptor
        being read (the bytes digested are the ones read) and kept until the next read."""
        position = self.position
        if self.path is None or self._fd is None or position.offset == 0 or position.digest:
            return position  # stdin, a file not opened in this run, or digested already
        self.position = position._replace(digest=digest_of(self._fd, position.offset))
        return self.position

    def _check_same_file(self, fd: int) -> None:
        """At the end of what was written so far, whether the path still names the file being
        read: one replaced or truncated while followed would otherwise be read at the old
        offset, and its first lines skipped."""
        assert self.path is not None
        try:
            now = self.path.stat()
        except OSError:
            return  # removed: nothing more will come from it
        own = os.fstat(fd)
        if own.st_size < self.position.offset + len(self._buf):
            raise self.replaced()
        if (now.st_ino, now.st_dev) != (own.st_ino, own.st_dev):
            self.moved = True  # renamed (rotated): the source looks for its new name

    def replaced(self) -> SourceError:
        return SourceError(
            f"{self.display}: the file was replaced, rewritten or truncated while being read "
            f"(offset {self.position.offset}); new data needs a new file name, or its lines "
            "before that offset would be skipped"
        )

    def _verify(self, fd: int) -> None:
        """Whether the bytes already read are still the file's: a file rewritten in place (the
        same inode, truncated and written again) would otherwise be read on at the old
        offset, mid-way into other lines. Two small reads before each block."""
        at = self.position.offset + len(self._buf)
        head, tail = self._head, self._tail
        if os.pread(fd, len(head), 0) != head or os.pread(fd, len(tail), at - len(tail)) != tail:
            raise self.replaced()

    def _seen(self, data: bytes, at: int) -> None:
        """Note bytes just read at offset ``at`` for :meth:`_verify`."""
        if len(self._head) == at < DIGEST_SPAN:
            self._head = (self._head + data)[:DIGEST_SPAN]
        self._tail = (self._tail + data[-DIGEST_SPAN:])[-DIGEST_SPAN:]

    def identity(self) -> tuple[int, int] | None:
        """The open file's device and inode (None when not open)."""
        if self._fd is None or self.path is None:
            return None
        own = os.fstat(self._fd)
        return own.st_dev, own.st_ino

    def close(self) -> None:
        if self._fd is not None and self.path is not None:
            os.close(self._fd)
        self._fd = None

    def partial_tail(self) -> bool:
        """All that is left of the file is a last line without its newline."""
        if not self.pending or b"\n" in self._buf:
            return False
        return self.size() == self.position.offset + len(self._buf)

    def size(self) -> int | None:
        if self.path is None:
            return None
        try:
            return self.path.stat().st_size
        except OSError:
            return None

    def _fill(self, want: int, wait: float) -> bool:
        """Read more into the buffer; False when nothing new is there now."""
        fd = self._open()
        if self.path is None:
            if self.eof:
                return False
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                return False
            data = os.read(fd, BLOCK)
            if not data:
                self.eof = True
                if self._buf and not self._buf.endswith(b"\n"):
                    # Nothing can complete it and stdin cannot be resumed: it is a line.
                    self._buf += b"\n"
                    return True
                return False
        else:
            self._verify(fd)
            at = self.position.offset + len(self._buf)
            data = os.read(fd, max(want, BLOCK))
            if not data:
                self._check_same_file(fd)
                return False
            self._seen(data, at)
        self._buf += data
        return True

    def read(self, max_lines: int, max_bytes: int, wait: float = 0.0) -> Chunk | None:
        """Up to ``max_lines`` complete lines in about ``max_bytes``; None if none is complete."""
        buf = self._buf
        # Make sure a complete line is buffered, and a decent chunk of them if the file has it.
        while True:
            nl = buf.find(b"\n", self._scanned)
            if nl >= 0 and len(buf) >= min(max_bytes, BLOCK):
                break
            if nl < 0:
                self._scanned = len(buf)
                if len(buf) > MAX_LINE_BYTES:
                    raise LineTooLong(self.display, self.position.line + 1)
            if not self._fill(min(max_bytes, BLOCK * 4), wait):
                break
        nl = buf.find(b"\n", self._scanned if self._scanned < len(buf) else 0)
        if nl < 0:
            nl = buf.find(b"\n")
        if nl < 0:
            self.pending = bool(buf)
            return None
        end = buf.rfind(b"\n", 0, max(max_bytes, nl + 1))
        if end < nl:
            end = nl
        count = buf.count(b"\n", 0, end) + 1
        if count > max_lines:
            end = -1
            for _ in range(max_lines):
                end = buf.find(b"\n", end + 1)
            count = max_lines
        with memoryview(buf) as view:
            data = view[:end].tobytes()  # one copy; the view is released before the delete
        nbytes = end + 1
        del buf[:nbytes]
        self._scanned = 0
        self.pending = bool(buf)
        first = self.position.line + 1
        self.position = Position(self.position.offset + nbytes, self.position.line + count)
        return Chunk(self.display, first, data, count, self.position, nbytes)
