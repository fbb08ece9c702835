"""NDJSON sources: files matching a glob (read in path order, resumed by byte offset) or stdin.

Reading hands out *chunks* of whole lines that fit a budget of lines and bytes, so the runtime
never has to push a line back: a chunk either goes into the transaction whole or is not read.
A last line without its newline is never handed out (a writer may be half-way through it); it
is read once its newline arrives, or by the next run.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterator
from pathlib import Path

from afterload.ndjson.cursor import (
    STDIN,
    Chunk,
    Cursor,
    LineTooLong,
    Position,
    SourceError,
)
from afterload.ndjson.identity import digest_at, grown_elsewhere, names_file

__all__ = ["STDIN", "Chunk", "LineTooLong", "Position", "Source", "SourceError"]

log = logging.getLogger("afterload.sources")


class Source:
    """The files of one binding's glob (or stdin), each with its own cursor."""

    def __init__(self, pattern: str, base_dir: Path, positions: dict[str, Position]) -> None:
        self.pattern = pattern
        self.base_dir = base_dir
        self._positions = dict(positions)
        self.cursors: dict[str, Cursor] = {}
        self._order: list[Cursor] = []
        if pattern == STDIN:
            if positions.get(STDIN, Position()).offset:
                log.info("standard input cannot be resumed; reading it from its start")
            self._add(Cursor(STDIN, None, Position()))
        self.refresh()
        self._vanished()

    @property
    def is_stdin(self) -> bool:
        return self.pattern == STDIN

    @property
    def matches_nothing(self) -> bool:
        """A glob that matched no file (a typo, or files yet to come): worth a word to the user."""
        return not self.is_stdin and not self.cursors

    def _add(self, cursor: Cursor) -> None:
        self.cursors[cursor.display] = cursor
        self._order = sorted(self.cursors.values(), key=lambda c: c.display)

    def display(self, path: Path) -> str:
        try:
            return path.relative_to(self.base_dir).as_posix()
        except ValueError:
            return path.as_posix()

    def refresh(self) -> int:
        """Pick up files that appeared since the last look; returns how many.

        A new name may be a file already read under another name (renamed, as log rotation
        does): it goes on from where that file was, rather than from its start, which would
        load its lines twice (and, keyed, put old values over newer ones).
        """
        if self.is_stdin:
            return 0
        pattern = str(self.base_dir / self.pattern)  # an absolute pattern stays as it is
        new: dict[str, Path] = {}
        # Path.glob takes no absolute pattern, and a user's glob may be either.
        for name in glob.glob(pattern, recursive=True):  # noqa: PTH207
            path = Path(name)
            if path.is_file():
                display = self.display(path)
                if display not in self.cursors:
                    new[display] = path
        added = 0
        orphans: list[str] | None = None
        for display, path in sorted(new.items()):
            if display not in self._positions:
                if orphans is None:
                    orphans = self._orphans()
                if self._follows(display, path, orphans):
                    continue
            self._add(Cursor(display, path, self._positions.get(display, Position())))
            added += 1
        return added

    def _orphans(self) -> list[str]:
        """Committed names that no longer name the file committed (renamed, or replaced)."""
        return [
            name
            for name, position in self._positions.items()
            if name not in self.cursors and position.digest and not self._holds(name, position)
        ]

    def _vanished(self) -> None:
        """A committed file gone from the glob, renamed away and grown: its new lines would
        be lost without a word (one deleted, or renamed whole, needs no word)."""
        for name in self._orphans():
            position = self._positions[name]
            assert position.digest is not None
            where = (self.base_dir / name).parent
            if moved := grown_elsewhere(where, position.offset, position.digest):
                raise SourceError(
                    f"{name} was renamed {self.display(moved)}, which the glob does not match, "
                    f"and holds lines after the {position.offset} bytes committed; match its "
                    "new name in the glob to load them, or move it away to leave them"
                )

    def _follows(self, display: str, path: Path, orphans: list[str]) -> bool:
        """Whether ``path``, a name never committed, is a file read before under another name;
        if so, it takes that name's place (its cursor while following, its committed position
        after a restart)."""
        try:
            st = path.stat()
        except OSError:
            return False
        for old, cursor in list(self.cursors.items()):
            if cursor.identity() == (st.st_dev, st.st_ino) and not names_file(cursor.path, st):
                del self.cursors[old]
                self._positions.pop(old, None)
                cursor.display, cursor.path, cursor.moved = display, path, False
                self._add(cursor)
                log.info("%s was renamed %s: read on from where it was", old, display)
                return True
        for old in orphans:
            position = self._positions[old]
            if position.offset > st.st_size or digest_at(path, position.offset) != position.digest:
                continue
            orphans.remove(old)
            del self._positions[old]
            self._positions[display] = position
            self._add(Cursor(display, path, position))
            log.info("%s was renamed %s: read on from where it was", old, display)
            return True
        return False

    def _holds(self, display: str, position: Position) -> bool:
        """Whether the committed name still names the file committed (so no other is it)."""
        path = self.base_dir / display
        try:
            if path.stat().st_size < position.offset:
                return False
        except OSError:
            return False
        return digest_at(path, position.offset) == position.digest

    def read(self, max_lines: int, max_bytes: int, wait: float = 0.0) -> Chunk | None:
        for cursor in self._order:
            chunk = cursor.read(max_lines, max_bytes, wait)
            if chunk is not None:
                return chunk
            if cursor.moved:
                self.refresh()  # finds its new name if the glob matches it
                if cursor.moved:
                    raise SourceError(
                        f"{cursor.display}: the name now names another file than the one read "
                        f"up to offset {cursor.position.offset}, which was replaced or renamed "
                        "to a name the glob does not match; new data needs a new file name, "
                        "and rotated files a glob that matches their new names, or lines would "
                        "be lost"
                    )
                return self.read(max_lines, max_bytes, wait)
        return None

    def positions(self) -> dict[str, Position]:
        out = dict(self._positions)
        for display, cursor in self.cursors.items():
            out[display] = cursor.committed()
        return out

    def exhausted(self) -> bool:
        """Stdin closed (files are never exhausted: they may grow)."""
        return self.is_stdin and all(c.eof for c in self.cursors.values())

    def pending(self) -> Iterator[str]:
        """Files ending in a partial last line, for the message at the end of ``--once``.

        Complete lines left unread (a stop requested mid-file) are not a partial line.
        """
        return (c.display for c in self._order if c.partial_tail())

    def close(self) -> None:
        for cursor in self.cursors.values():
            cursor.close()
