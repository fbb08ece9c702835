"""The JSON codec: one message per line on stdin (requests) and stdout (responses).

This is what Flow's runtime speaks when the image is labelled ``FLOW_RUNTIME_CODEC=json`` or
a local command runs without ``protobuf: true``. Lines can be large (a document of many
megabytes), so the reader accepts up to 128 MiB per line, the limit Estuary's Python CDK
uses; and the writer flushes after every response, because the runtime waits for each one.
"""

from __future__ import annotations

import sys
from typing import BinaryIO

from afterload.flow.errors import ProtocolError
from afterload.flow.request import Request, parse_request
from afterload.flow.response import Response, encode_response

#: The longest request line accepted, newline included.
MAX_LINE = 128 * 1024 * 1024


class RequestReader:
    """Reads requests from a binary stream, one per line, until end of stream."""

    def __init__(self, stream: BinaryIO | None = None, max_line: int = MAX_LINE) -> None:
        self._stream = stream if stream is not None else sys.stdin.buffer
        self._max_line = max_line
        self.line_number = 0

    def read_line(self) -> bytes | None:
        """The next non-empty line without its newline, or None at end of stream."""
        while True:
            line = self._stream.readline(self._max_line + 1)
            if not line:
                return None
            self.line_number += 1
            if len(line) > self._max_line:
                raise ProtocolError(
                    f"request line {self.line_number} is longer than "
                    f"{self._max_line // (1024 * 1024)} MiB"
                )
            line = line.rstrip(b"\r\n")
            if line.strip():
                return line

    def read(self) -> Request | None:
        """The next request, or None at end of stream."""
        line = self.read_line()
        if line is None:
            return None
        return parse_request(line)

    def __iter__(self) -> RequestReader:
        return self

    def __next__(self) -> Request:
        request = self.read()
        if request is None:
            raise StopIteration
        return request


class ResponseWriter:
    """Writes responses, one per line, flushed at once: the runtime is waiting for each."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer

    def write(self, message: Response) -> None:
        self.write_line(encode_response(message))

    def write_line(self, line: bytes) -> None:
        """A pre-encoded response line (see :func:`afterload.flow.response.encode_loaded`)."""
        self._stream.write(line)
        self._stream.flush()

    def write_lines(self, lines: list[bytes]) -> None:
        """Several pre-encoded lines with one flush (a batch of Loaded)."""
        self._stream.writelines(lines)
        self._stream.flush()
