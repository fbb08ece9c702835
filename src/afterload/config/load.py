"""The materialization's config file: pydantic models, ``${ENV}`` interpolation, clear errors.

The ``dbt_job_trigger`` block keeps the original connector's keys so an existing block can be
pasted unchanged. Unknown keys are errors everywhere, so a typo never silently disables a
feature, and every problem is reported as one line naming its key path (and, for YAML, the
line it stands on).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from afterload.durations import PATTERN as DURATION_PATTERN
from afterload.durations import format_duration, parse_duration
from afterload.errors import ConfigError

_DURATION_HINT = "is not a duration (e.g. 30m, 1h, 90s)"


def _to_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            raise ValueError(f"{value!r} {_DURATION_HINT}") from None
    raise ValueError(f"{value!r} {_DURATION_HINT}")


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
]


def _to_id(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a positive integer id")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise ValueError(f"{value!r} is not a positive integer id")
    if not 0 < number < 2**63:
        raise ValueError(f"{value!r} is not a positive integer id")
    return number


PositiveId = Annotated[
    int,
    BeforeValidator(_to_id),
    WithJsonSchema(
        {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": r"^\d+$"}]}
    ),
]


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DbtJobTrigger(Strict):
    """Triggers a dbt Cloud job after data is committed: the original connector's block."""

    access_url: str | None = Field(
        default=None,
        description="The dbt Cloud access URL of the account (Account Settings), "
        "e.g. https://ab123.us1.dbt.com. http:// is accepted only for loopback hosts.",
        json_schema_extra={"format": "uri"},
    )
    account_prefix: str | None = Field(
        default=None,
        description="Legacy: the account prefix; used only when access_url is not set "
        "and maps to https://{prefix}.us1.dbt.com.",
        json_schema_extra={"deprecated": True},
    )
    account_id: PositiveId = Field(description="The dbt Cloud account id.")
    job_id: PositiveId = Field(description="The id of the dbt Cloud job to trigger.")
    api_key: SecretStr = Field(
        description="A dbt Cloud service token or personal access token.",
        json_schema_extra={"secret": True},
    )
    cause: str = Field(
        default="Estuary Flow",
        min_length=1,
        max_length=255,
        description="The cause recorded on each run dbt Cloud creates.",
    )
    mode: Literal["skip", "replace", "ignore"] = Field(
        default="skip",
        description="What to do when a run of the job is already queued, starting or running: "
        "skip starts nothing, replace cancels it and starts a new one, ignore starts another.",
    )
    interval: Duration = Field(
        default=timedelta(minutes=30),
        description="At most one run per interval, and only after new data was committed.",
        json_schema_extra={"default": "30m", "examples": ["30m", "1h", "90s", "0s"]},
    )

    @field_validator("access_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"{value!r} is not an https:// URL")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError(
                f"{value!r} uses http://, which would send the API key in clear; "
                "use https:// (http:// is allowed only for loopback hosts)"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"{value!r} must not carry a query or fragment")
        return value.rstrip("/")

    @field_validator("account_prefix")
    @classmethod
    def _check_prefix(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9-]+", value):
            raise ValueError(f"{value!r} is not an account prefix (letters, digits, dashes)")
        return value

    @model_validator(mode="after")
    def _need_url(self) -> DbtJobTrigger:
        if self.access_url is None and self.account_prefix is None:
            raise ValueError("access_url is required")
        return self

    @property
    def base_url(self) -> str:
        """The account's API host, without a trailing slash."""
        if self.access_url is not None:
            return self.access_url
        return f"https://{self.account_prefix}.us1.dbt.com"


JsonPointer = Annotated[str, Field(pattern=r"^(/([^~/]|~[01])*)+$")]


class DuckDBDestination(Strict):
    path: str = Field(
        default="afterload.duckdb",
        description="The DuckDB database file, relative to the config file.",
    )
    schema_: str = Field(default="main", alias="schema", description="The schema of the tables.")
    memory_limit: str | None = Field(
        default=None,
        pattern=r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="DuckDB's memory limit, e.g. 1GB; DuckDB's default is 80% of the RAM.",
    )


class PostgresDestination(Strict):
    dsn: str | None = Field(default=None, description="A libpq connection URI or key=value string.")
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = None
    password: SecretStr | None = Field(default=None, json_schema_extra={"secret": True})
    database: str | None = None
    sslmode: str | None = None
    schema_: str = Field(default="public", alias="schema", description="Created if missing.")
    connect_timeout: int | None = Field(
        default=None,
        ge=1,
        le=3600,
        description="Seconds to wait for a connection; default: the DSN's, else 10.",
    )


class Destination(Strict):
    """Exactly one of the destinations."""

    duckdb: DuckDBDestination | None = None
    postgres: PostgresDestination | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Destination:
        if (self.duckdb is None) == (self.postgres is None):
            raise ValueError("give exactly one of duckdb or postgres")
        return self


SyncFrequency = Literal["0s", "30s", "5m", "15m", "30m", "1h", "2h", "4h"]
Weekday = Literal["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


class SyncSchedule(Strict):
    """Estuary Flow's sync schedule: how often to commit once the sources are caught up."""

    syncFrequency: SyncFrequency = Field(
        default="0s",
        description="Once caught up, commit no more often than this. 0s commits as soon as "
        "data arrives.",
    )
    timezone: str | None = Field(default=None, description="IANA zone of the fast-sync window.")
    fastSyncStartTime: str | None = Field(
        default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM"
    )
    fastSyncStopTime: str | None = Field(
        default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM"
    )
    fastSyncEnabledDays: str | None = Field(
        default=None, description="Days of the fast-sync window, e.g. 'M-F' or 'Mo, We, Fr'."
    )

    @field_validator("fastSyncEnabledDays")
    @classmethod
    def _days(cls, value: str | None) -> str | None:
        if value is not None:
            from afterload.sync_schedule import parse_days

            parse_days(value)
        return value

    @model_validator(mode="after")
    def _window_complete(self) -> SyncSchedule:
        window = [self.timezone, self.fastSyncStartTime, self.fastSyncStopTime]
        if any(v is not None for v in window) and not all(v is not None for v in window):
            raise ValueError("timezone, fastSyncStartTime and fastSyncStopTime go together")
        if self.timezone is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{self.timezone!r} is not an IANA time zone") from None
        return self


class Binding(Strict):
    """One source stream into one table."""

    source: str = Field(description="A glob of NDJSON files (relative to the config file), or -.")
    table: str = Field(min_length=1, max_length=63)
    key: list[JsonPointer] = Field(
        default_factory=list, description="JSON pointers of the key; required unless delta."
    )
    delta_updates: bool = False
    hard_delete: bool = False
    schema_: str | None = Field(
        default=None, alias="schema", description="A JSON Schema file for the documents."
    )
    rejects: str | None = Field(
        default=None, description="Bad lines go to this NDJSON file with a reason."
    )

    @model_validator(mode="after")
    def _key_needed(self) -> Binding:
        if not self.key and not self.delta_updates:
            raise ValueError("key is required unless delta_updates is true")
        return self


class TransactionLimits(Strict):
    max_documents: int = Field(default=200_000, ge=1, description="Documents per transaction.")
    max_bytes: int = Field(default=128 * 1024 * 1024, ge=1024, description="Bytes per transaction.")


class Config(Strict):
    """A materialization: where data lands and which dbt Cloud job to keep fresh."""

    name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$",
        max_length=200,
        description="The materialization's name; keys its checkpoint.",
    )
    destination: Destination | None = None
    syncSchedule: SyncSchedule = Field(default_factory=SyncSchedule)
    bindings: list[Binding] = Field(default_factory=list)
    transaction: TransactionLimits = Field(default_factory=TransactionLimits)
    dbt_job_trigger: DbtJobTrigger | None = Field(
        default=None, description="Optional: the dbt Cloud job to trigger after commits."
    )


# ---------------------------------------------------------------------------------------------
# Loading

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class LoadedConfig:
    """A validated config and the directory its relative paths are resolved against."""

    def __init__(self, config: Config, path: Path) -> None:
        self.config = config
        self.path = path
        self.base_dir = path.parent

    def resolve(self, relative: str) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.base_dir / p


def _interpolate(node: Any, path: tuple[str | int, ...], problems: list[str]) -> Any:
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
                problems.append(f"{_dotted(path)}: environment variable {m.group(1)} is not set")
                return ""
            return value

        return _ENV.sub(sub, node)
    return node


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line_index(text: str) -> dict[tuple[str | int, ...], int]:
    """Map key paths to 1-based line numbers, best effort (YAML and JSON alike)."""
    index: dict[tuple[str | int, ...], int] = {}
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


def _message(err: Any) -> str:
    kind = err["type"]
    msg = str(err["msg"])
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known key (check its spelling)"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{err['input']!r} is not one of {expected}"
    if kind in ("string_too_long", "string_too_short"):
        ctx = err.get("ctx", {})
        bound = ctx.get("max_length", ctx.get("min_length"))
        word = "at most" if kind == "string_too_long" else "at least"
        return f"must be {word} {bound} characters"
    if kind == "string_pattern_mismatch":
        return f"{err['input']!r} is not valid here"
    if msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
    return msg


def _redact_secret(loc: tuple[str | int, ...], message: str, raw: Any) -> str:
    """Errors on secret fields never echo the value."""
    if loc and loc[-1] in ("api_key", "password") and isinstance(raw, str) and raw:
        return message.replace(repr(raw), "(hidden)").replace(raw, "(hidden)")
    return message


def validation_problems(
    exc: ValidationError, lines: dict[tuple[str | int, ...], int], prefix: str
) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        where = prefix
        for n in range(len(loc), -1, -1):
            if loc[:n] in lines:
                where = f"{prefix}:{lines[loc[:n]]}"
                break
        text = _redact_secret(loc, _message(err), err.get("input"))
        problems.append(f"{where}: {_dotted(loc)}: {text}")
    return problems


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
    lines = _line_index(text)
    env_problems: list[str] = []
    data = _interpolate(data, (), env_problems)
    if env_problems:
        raise ConfigError([f"{name}: {p}" for p in env_problems])
    try:
        return Config.model_validate(data)
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
    return LoadedConfig(parse_config(text, p), p.resolve())


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the whole config, the form a UI or an editor would use."""
    schema = Config.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "afterload materialization"
    return schema
