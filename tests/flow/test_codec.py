"""The JSON-lines codec over real pipes, and stderr logs in the shape Flow's runtime reads."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import pytest

from afterload.flow import logs
from afterload.flow.codec import RequestReader
from afterload.flow.errors import ProtocolError
from afterload.flow.request import Store


def test_reader_lines_blank_lines_and_eof() -> None:
    stream = io.BytesIO(b'{"load":{"keyPacked":"FQE="}}\n\n{"flush":{}}\r\n{"acknowledge":{}}')
    reader = RequestReader(stream)
    kinds = [type(r).__name__ for r in reader]
    assert kinds == ["Load", "Flush", "Acknowledge"]
    assert reader.read() is None


def test_a_large_line_passes_and_a_too_large_one_names_its_line() -> None:
    doc = "x" * (3 * 1024 * 1024)
    line = json.dumps({"store": {"doc": {"blob": doc}}}).encode() + b"\n"
    store = RequestReader(io.BytesIO(line)).read()
    assert isinstance(store, Store) and store.doc["blob"] == doc
    reader = RequestReader(io.BytesIO(b'{"flush":{}}\n' + line), max_line=1024 * 1024)
    reader.read()
    with pytest.raises(ProtocolError, match="request line 2 is longer than 1 MiB"):
        reader.read()


def test_over_a_real_pipe_each_response_is_flushed_at_once() -> None:
    # The child echoes each Load as a Loaded and answers Flush with Flushed, over pipes:
    # reading each answer before sending the next request proves nothing waits in a buffer.
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from afterload.flow.codec import RequestReader, ResponseWriter\n"
            "from afterload.flow.request import Load\n"
            "from afterload.flow.response import Flushed, encode_loaded\n"
            "w = ResponseWriter()\n"
            "for r in RequestReader():\n"
            "    if isinstance(r, Load): w.write_line(encode_loaded(r.binding, b'{}'))\n"
            "    else: w.write(Flushed())\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None
    for n in range(3):
        child.stdin.write(json.dumps({"load": {"binding": n}}).encode() + b"\n")
        child.stdin.flush()
        assert json.loads(child.stdout.readline()) == {"loaded": {"binding": n, "doc": {}}}
    child.stdin.write(b'{"flush":{}}\n')
    child.stdin.flush()
    assert json.loads(child.stdout.readline()) == {"flushed": {}}
    child.stdin.close()
    assert child.wait(10) == 0


def test_log_lines_carry_the_fields_the_runtime_decodes() -> None:
    out = io.StringIO()
    log = logs.configure(out, level="debug")
    log.debug("staged", extra={"keys": 3})
    log.warning("slow commit", extra={"seconds": 2.5})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [entry["level"] for entry in lines] == ["debug", "warn", "error"]
    assert lines[0]["message"] == "staged" and lines[0]["fields"]["keys"] == 3
    assert lines[1]["fields"]["seconds"] == 2.5
    assert "ValueError: boom" in lines[2]["fields"]["traceback"][-1]
    assert all(entry["ts"].endswith("+00:00") for entry in lines)


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("debug", logging.DEBUG),
        ("WARN", logging.WARNING),
        ("trace", 5),
        (None, logging.INFO),
        ("bogus", logging.INFO),
    ],
)
def test_log_level_from_the_environment(
    value: str | None, level: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv("LOG_LEVEL", raising=False)
    else:
        monkeypatch.setenv("LOG_LEVEL", value)
    logs.configure(io.StringIO())
    assert logging.getLogger("afterload").level == level
