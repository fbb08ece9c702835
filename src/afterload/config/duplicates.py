"""Keys written twice in one mapping: YAML and JSON loaders keep the last silently.

A config where ``job_id`` appears twice does what its second line says while a reader sees the
first, so each repetition is an error naming both lines.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from afterload.config.problems import dotted


def duplicate_keys(text: str, name: str) -> list[str]:
    """One ``file:line: key.path: is written twice (first on line N)`` per repeated key."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return _json_duplicates(text, name)
    found: list[str] = []

    def walk(node: yaml.Node | None, path: tuple[str | int, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for k, v in node.value:
                if not isinstance(k, yaml.ScalarNode) or k.tag == "tag:yaml.org,2002:merge":
                    continue
                line = k.start_mark.line + 1
                key = str(k.value)
                if key in seen:
                    where = dotted((*path, key))
                    found.append(
                        f"{name}:{line}: {where}: is written twice (first on line {seen[key]})"
                    )
                else:
                    seen[key] = line
                walk(v, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, (*path, i))

    walk(root, ())
    return found


def _json_duplicates(text: str, name: str) -> list[str]:
    """JSON that YAML cannot read: repeated keys found without their line."""
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                found.append(f"{name}: {key}: is written twice in one object")
            seen.add(key)
        return dict(items)

    try:
        json.loads(text, object_pairs_hook=pairs)
    except ValueError:
        return []
    return found
