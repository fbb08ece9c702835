"""Where a rejects file may not go: anywhere afterload reads.

A rejects file a binding's glob matches is read back as input (in follow mode it feeds itself
without end; with delta updates its entries become rows); one over the config file or a JSON
Schema destroys it. The glob is matched as :class:`~afterload.ndjson.sources.Source` expands
it (``glob.glob`` on the config folder joined with the pattern, ``**`` recursive, ``*`` skipping
hidden names), on the path as written and with symlinks resolved, so a file that does not
exist yet is judged too.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from pathlib import Path


def _split(path: str) -> list[str]:
    return [part for part in Path(path).parts if part]


def _component(pattern: str, name: str) -> bool:
    if not glob.has_magic(pattern):
        return pattern == name
    if name.startswith(".") and not pattern.startswith("."):
        return False  # glob's wildcards skip hidden names
    return fnmatch.fnmatchcase(name, pattern)


def _match(pattern: list[str], parts: list[str]) -> bool:
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        # Zero or more folders (never hidden ones), as glob's recursive ``**``.
        for skip in range(len(parts) + 1):
            if skip and parts[skip - 1].startswith("."):
                return False
            if _match(rest, parts[skip:]):
                return True
        return False
    return bool(parts) and _component(head, parts[0]) and _match(rest, parts[1:])


def _pattern_forms(pattern: str) -> list[list[str]]:
    """The pattern's parts as written and with its literal folders' symlinks resolved."""
    parts = _split(os.path.normpath(pattern))
    literal = next((k for k, p in enumerate(parts) if glob.has_magic(p)), len(parts))
    resolved = _split(os.path.realpath(Path(*parts[:literal]))) if literal else []
    return [parts, [*resolved, *parts[literal:]]]


def glob_matches(base_dir: Path, source: str, path: Path) -> bool:
    """Whether the glob ``source`` (relative to ``base_dir``) matches ``path``, now or once
    ``path`` exists."""
    pattern = str(base_dir / source)  # an absolute source stays as it is
    target = os.path.realpath(path)
    candidates = [_split(os.path.normpath(path)), _split(target)]
    if any(_match(form, c) for form in _pattern_forms(pattern) for c in candidates):
        return True
    if Path(target).exists():
        found = glob.iglob(pattern, recursive=True)  # noqa: PTH207
        return any(os.path.realpath(name) == target for name in found)
    return False


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (symlinks and ``..`` resolved), existing or not."""
    return os.path.realpath(a) == os.path.realpath(b)
