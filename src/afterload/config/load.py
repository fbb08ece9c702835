"""Reading the config file: YAML or JSON, ``${ENV}`` interpolation, size limits, line numbers.

Every problem becomes one line naming file, line and key path (:mod:`.problems`), and all of
them are reported at once, so a user fixes a file in one round.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from afterload.config.duplicates import duplicate_keys
from afterload.config.model import Config
from afterload.config.problems import LineIndex, dotted, validation_problems, where
from afterload.errors import ConfigError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class LoadedConfig:
    """A validated config and the directory its relative paths are resolved against."""

    def __init__(
        self,
        config: Config,
        path: Path,
        *,
        lines: LineIndex | None = None,
        display: str | None = None,
    ) -> None:
        self.config = config
        self.path = path
        self.base_dir = path.parent
        self.lines: LineIndex = lines or {}
        """Key paths to the lines they stand on, for problems found after loading."""
        self.display = display or str(path)
        """The file as the user named it, the prefix of every problem."""

    def where(self, *loc: str | int) -> str:
        """``file:line: key.path`` for a problem found after loading (line when known)."""
        return f"{where(self.lines, self.display, loc)}: {dotted(loc)}"

    @property
    def name(self) -> str:
        """The materialization's name (the file's stem when not given): keys its checkpoint."""
        return self.config.name or self.path.stem

    def resolve(self, relative: str) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.base_dir / p


def _interpolate(
    node: Any, path: tuple[str | int, ...], problems: list[tuple[tuple[str | int, ...], str]]
) -> Any:
    """Replace ``${VAR}`` (or ``${VAR:-default}``) in every string value from the environment."""
    if isinstance(node, dict):
        return {k: _interpolate(v, (*path, k), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, (*path, i), problems) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def sub(m: re.Match[str]) -> str:
            value = os.environ.get(m.group(1))
            if value is None:
                if m.group(2) is not None:
                    return m.group(2)
                problems.append((path, f"environment variable {m.group(1)} is not set"))
                return ""
            return value

        return _ENV.sub(sub, node)
    return node


def line_index(text: str) -> LineIndex:
    """Map key paths to 1-based line numbers, best effort (YAML and JSON alike)."""
    index: LineIndex = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return index

    def walk(node: yaml.Node | None, path: tuple[str | int, ...]) -> None:
        if node is None:
            return
        index[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = (*path, str(k.value))
                index[key] = k.start_mark.line + 1
                walk(v, key)
                index[key] = k.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, (*path, i))

    walk(root, ())
    return index


_MAX_NODES = 100_000


def _expanded_size(node: Any, memo: dict[int, int]) -> int:
    """Values after YAML aliases are expanded: a billion-laughs file must not hang the loader."""
    if not isinstance(node, dict | list):
        return 1
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = _MAX_NODES + 1  # a cycle counts as too large
    items = node.values() if isinstance(node, dict) else node
    total = 1
    for item in items:
        total += _expanded_size(item, memo)
        if total > _MAX_NODES:
            break
    memo[id(node)] = total
    return total


def parse_config(text: str, path: Path) -> Config:
    """Validate a config document; raises :class:`ConfigError` with one line per problem."""
    try:
        return _parse_config(text, path)
    except RecursionError:
        raise ConfigError([f"{path}: the config is nested too deeply"]) from None


def _parse_config(text: str, path: Path) -> Config:
    name = str(path)
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise ConfigError([f"{name}:{e.lineno}: not valid JSON: {e.msg}"]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError([f"{name}{line}: not valid YAML: {problem}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{name}: the config must be a mapping of keys to values"])
    if _expanded_size(data, {}) > _MAX_NODES:
        raise ConfigError([f"{name}: the config expands to more than {_MAX_NODES} values"])
    repeated = duplicate_keys(text, name)
    if repeated:
        raise ConfigError(repeated)
    lines = line_index(text)
    env_problems: list[tuple[tuple[str | int, ...], str]] = []
    data = _interpolate(data, (), env_problems)
    if env_problems:
        raise ConfigError(
            [f"{where(lines, name, loc)}: {dotted(loc)}: {p}" for loc, p in env_problems]
        )
    try:
        # Relative paths inside blocks (a dbt project) are the config file's, not the cwd's.
        return Config.model_validate(data, context={"config_dir": path.resolve().parent})
    except ValidationError as e:
        raise ConfigError(validation_problems(e, lines, name)) from None


def load_config(path: str | Path) -> LoadedConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{p}: no such config file"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"{p}: cannot read the config file ({e})"]) from None
    return LoadedConfig(parse_config(text, p), p.resolve(), lines=line_index(text), display=str(p))
