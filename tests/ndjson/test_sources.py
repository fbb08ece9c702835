"""NDJSON sources on real files: order, resume, partial lines, growth, odd bytes, stdin."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from afterload.ndjson import cursor
from afterload.ndjson.sources import LineTooLong, Position, Source, SourceError


def drain(
    src: Source, max_lines: int = 10_000, max_bytes: int = 1 << 30
) -> list[tuple[str, int, bytes]]:
    out = []
    while (chunk := src.read(max_lines, max_bytes)) is not None:
        for i, line in enumerate(chunk.lines):
            out.append((chunk.source, chunk.first_line + i, line))
    return out


def test_files_are_read_in_path_order_with_line_numbers(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d/b.jsonl").write_bytes(b'{"n":3}\n')
    (tmp_path / "d/a.jsonl").write_bytes(b'{"n":1}\n{"n":2}\n')
    (tmp_path / "d/empty.jsonl").write_bytes(b"")
    src = Source("d/*.jsonl", tmp_path, {})
    assert drain(src) == [
        ("d/a.jsonl", 1, b'{"n":1}'),
        ("d/a.jsonl", 2, b'{"n":2}'),
        ("d/b.jsonl", 1, b'{"n":3}'),
    ]
    assert src.positions()["d/a.jsonl"][:2] == (16, 2)
    assert len(src.positions()["d/a.jsonl"].digest) == 16
    assert src.positions()["d/empty.jsonl"] == Position(0, 0)


def test_resume_from_offset_keeps_line_numbers(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b"1\n2\n3\n")
    src = Source("a.jsonl", tmp_path, {"a.jsonl": Position(2, 1)})
    assert drain(src) == [("a.jsonl", 2, b"2"), ("a.jsonl", 3, b"3")]


def test_partial_last_line_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"a":1}\n{"a":')
    src = Source("a.jsonl", tmp_path, {})
    assert [line for _, _, line in drain(src)] == [b'{"a":1}']
    assert list(src.pending()) == ["a.jsonl"]
    assert src.positions()["a.jsonl"][:2] == (8, 1)
    with open(path, "ab") as f:
        f.write(b'2}\n{"a":3}\n')
    assert drain(src) == [("a.jsonl", 2, b'{"a":2}'), ("a.jsonl", 3, b'{"a":3}')]
    assert list(src.pending()) == []


def test_new_files_are_picked_up_on_refresh(tmp_path: Path) -> None:
    (tmp_path / "1.jsonl").write_bytes(b"1\n")
    src = Source("*.jsonl", tmp_path, {})
    assert len(drain(src)) == 1
    (tmp_path / "2.jsonl").write_bytes(b"2\n")
    assert drain(src) == []
    assert src.refresh() == 1
    assert drain(src) == [("2.jsonl", 1, b"2")]


def test_chunks_respect_line_and_byte_budgets(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b"".join(b"%05d\n" % i for i in range(1000)))
    src = Source("a.jsonl", tmp_path, {})
    chunk = src.read(7, 1 << 20)
    assert chunk is not None and len(chunk.lines) == 7 and chunk.end == Position(42, 7)
    chunk = src.read(1000, 60)
    assert chunk is not None and len(chunk.lines) == 10 and chunk.nbytes == 60
    assert len(drain(src)) == 1000 - 17


def test_a_line_of_many_megabytes_is_read_whole(tmp_path: Path) -> None:
    big = b'{"blob":"' + b"x" * (9 << 20) + b'"}'
    (tmp_path / "a.jsonl").write_bytes(b"1\n" + big + b"\n2\n")
    src = Source("a.jsonl", tmp_path, {})
    lines = [line for _, _, line in drain(src, max_bytes=1 << 20)]
    assert lines == [b"1", big, b"2"]


def test_a_line_beyond_the_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cursor, "MAX_LINE_BYTES", 1000)
    (tmp_path / "a.jsonl").write_bytes(b"1\n" + b"x" * 5000)
    src = Source("a.jsonl", tmp_path, {})
    with pytest.raises(LineTooLong, match=r"a.jsonl:2: the line is longer"):
        drain(src)


def test_invalid_utf8_passes_through_as_bytes(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b'{"a":"\xff"}\n')
    assert drain(Source("a.jsonl", tmp_path, {}))[0][2] == b'{"a":"\xff"}'


def test_a_truncated_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b"1\n")
    src = Source("a.jsonl", tmp_path, {"a.jsonl": Position(100, 10)})
    with pytest.raises(SourceError, match="truncated or replaced"):
        drain(src)


def ids(src: Source) -> list[int]:
    return [json.loads(raw)["id"] for _, _, raw in drain(src)]


def lines(first: int, count: int, fill: str) -> bytes:
    return b"".join(
        b'{"id":%d,"v":"%s"}\n' % (i, fill.encode()) for i in range(first, first + count)
    )


def test_a_file_replaced_by_a_longer_one_is_an_error_not_a_skip(tmp_path: Path) -> None:
    """Same line lengths: the committed offset falls on a line boundary of the new file, whose
    first lines would be skipped without a word if only the size were checked."""
    path = tmp_path / "a.jsonl"
    path.write_bytes(lines(1, 5, "x"))
    first = Source("a.jsonl", tmp_path, {})
    drain(first)
    committed = first.positions()
    first.close()
    path.write_bytes(lines(1, 5, "x") + lines(6, 2, "x"))  # appended: resumes
    appended = Source("a.jsonl", tmp_path, committed)
    assert [n for _, n, _ in drain(appended)] == [6, 7]
    appended.close()
    replacement = tmp_path / "b.tmp"
    replacement.write_bytes(lines(6, 7, "z"))
    replacement.replace(path)
    again = Source("a.jsonl", tmp_path, committed)
    with pytest.raises(SourceError, match="was replaced; new data needs a new file name"):
        drain(again)


def test_a_checkpoint_without_digests_still_resumes(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(lines(1, 3, "x"))
    src = Source("a.jsonl", tmp_path, {"a.jsonl": Position(len(lines(1, 2, "x")), 2)})
    assert [n for _, n, _ in drain(src)] == [3]
    assert src.positions()["a.jsonl"].digest  # the next commit records it


@pytest.mark.parametrize("how", ["replaced", "truncated"])
def test_a_file_replaced_or_truncated_while_followed_is_an_error(tmp_path: Path, how: str) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(lines(1, 5, "x"))
    src = Source("a.jsonl", tmp_path, {})
    drain(src)
    if how == "replaced":
        (tmp_path / "b.tmp").write_bytes(lines(6, 7, "z"))
        (tmp_path / "b.tmp").replace(path)
    else:
        path.write_bytes(b"")  # truncated in place (copytruncate), then written again
        path.write_bytes(lines(6, 7, "z"))
        with open(path, "r+b") as f:  # the same file, shorter than what was read
            f.truncate(10)
    message = "now names another file" if how == "replaced" else "truncated while being read"
    with pytest.raises(SourceError, match=message):
        drain(src)


def test_a_file_rewritten_in_place_while_followed_is_an_error(tmp_path: Path) -> None:
    """The same inode truncated and written again, longer than what was read: before, the
    next read went on at the old offset, mid-way into the new lines, without a word."""
    path = tmp_path / "a.jsonl"
    path.write_bytes(lines(1, 3, "x"))
    src = Source("a.jsonl", tmp_path, {})
    drain(src)
    with open(path, "r+b") as f:  # O_TRUNC on the same file, then more than before
        f.truncate(0)
        f.write(lines(4, 8, "y"))
    with pytest.raises(SourceError, match="rewritten or truncated while being read"):
        drain(src)


def test_a_file_renamed_within_the_glob_goes_on_where_it_was(tmp_path: Path) -> None:
    """Rotation by rename to a name the glob matches, and a new file under the old name: no
    line twice (before, the renamed file was read again from its start)."""
    path = tmp_path / "app.jsonl"
    path.write_bytes(lines(1, 3, "x"))
    src = Source("*.jsonl", tmp_path, {})
    assert ids(src) == [1, 2, 3]
    path.rename(tmp_path / "app-1.jsonl")
    with open(tmp_path / "app-1.jsonl", "ab") as f:  # the writer still had it open
        f.write(lines(4, 1, "x"))
    path.write_bytes(lines(5, 1, "y"))
    assert ids(src) == [4]  # the old name's new file is found at the next look
    src.refresh()
    assert ids(src) == [5]
    positions = src.positions()
    assert sorted(positions) == ["app-1.jsonl", "app.jsonl"]

    # After a restart, from the committed positions alone: a second rename is recognised by
    # the digest of what was read.
    (tmp_path / "app-1.jsonl").rename(tmp_path / "app-2.jsonl")
    again = Source("*.jsonl", tmp_path, positions)
    assert drain(again) == []
    assert sorted(again.positions()) == ["app-2.jsonl", "app.jsonl"]


def test_a_file_renamed_out_of_the_glob_and_grown_stops_the_run(tmp_path: Path) -> None:
    """After a restart, a committed file gone from the glob: deleted, or renamed whole, is
    no loss; renamed and written on, its new lines would be lost without a word."""
    path = tmp_path / "app.jsonl"
    path.write_bytes(lines(1, 3, "x"))
    src = Source("app*.jsonl", tmp_path, {})
    assert ids(src) == [1, 2, 3]
    positions = src.positions()
    src.close()
    path.rename(tmp_path / "old.log")
    assert drain(Source("app*.jsonl", tmp_path, positions)) == []  # renamed whole: fine
    with open(tmp_path / "old.log", "ab") as f:
        f.write(lines(4, 1, "x"))
    with pytest.raises(SourceError, match=r"app.jsonl was renamed old.log, which the glob"):
        Source("app*.jsonl", tmp_path, positions)
    (tmp_path / "old.log").unlink()
    assert drain(Source("app*.jsonl", tmp_path, positions)) == []  # deleted: fine


def test_a_second_hard_link_is_a_new_file_not_a_move(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(lines(1, 2, "x"))
    src = Source("*.jsonl", tmp_path, {})
    drain(src)
    os.link(path, tmp_path / "b.jsonl")
    src.refresh()
    assert ids(src) == [1, 2]  # a new name for the glob: read whole


def test_stdin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    r, w = os.pipe()
    os.write(w, b"1\n2\n3")
    os.close(w)
    with os.fdopen(r, "rb") as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        src = Source("-", tmp_path, {})
        lines = []
        while not src.exhausted():
            chunk = src.read(100, 1 << 20, 0.1)
            if chunk is not None:
                lines += chunk.lines
        assert lines == [b"1", b"2", b"3"]  # closed stdin: its last line is complete
