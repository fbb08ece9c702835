"""The one place a destination is chosen from config: to write, to read status, to probe.

Backends are imported only when chosen, so PostgreSQL's driver (an optional extra) is needed
only by configs that use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from afterload.destinations.base import Destination, LockedError, StatusReader
from afterload.destinations.config import DestinationConfig
from afterload.destinations.duckdb.config import DuckDBConfig
from afterload.destinations.postgres.config import PostgresConfig
from afterload.errors import AfterloadError

if TYPE_CHECKING:
    from afterload.destinations.duckdb.shared import TurnLock

DEFAULT_DUCKDB = DuckDBConfig()


def _duckdb(config: DestinationConfig | None) -> DuckDBConfig | None:
    if config is not None and config.postgres is not None:
        return None
    return config.duckdb if config is not None and config.duckdb is not None else DEFAULT_DUCKDB


def _postgres_needed() -> AfterloadError:
    return AfterloadError(
        "the postgres destination needs psycopg: pip install 'afterload[postgres]'"
    )


def _postgres(config: PostgresConfig) -> Destination:
    try:
        from afterload.destinations.postgres.destination import PostgresDestination
    except ImportError:
        raise _postgres_needed() from None
    return PostgresDestination.from_config(config)


def open_destination(config: DestinationConfig | None, base_dir: Path) -> Destination:
    """The configured destination, not yet opened (``open`` raises the fence)."""
    duck = _duckdb(config)
    if duck is None:
        assert config is not None and config.postgres is not None
        return _postgres(config.postgres)
    from afterload.destinations.duckdb.destination import DuckDBDestination

    return DuckDBDestination(
        _resolve(base_dir, duck.path), duck.schema_, memory_limit=duck.memory_limit
    )


def open_shared(
    config: DestinationConfig | None, base_dir: Path, *, turns: TurnLock | None = None
) -> Destination:
    """As :func:`open_destination`, for ``afterload run``: a DuckDB file is held only while
    committing, so readers and dbt can open it between commits (see ``duckdb/shared.py``);
    ``turns`` is the lock it shares with the dbt runs afterload starts."""
    duck = _duckdb(config)
    if duck is None:
        return open_destination(config, base_dir)
    from afterload.destinations.duckdb.shared import SharedDuckDBDestination

    return SharedDuckDBDestination(
        _resolve(base_dir, duck.path), duck.schema_, memory_limit=duck.memory_limit, turns=turns
    )


def duckdb_path(config: DestinationConfig | None, base_dir: Path) -> Path | None:
    """The DuckDB file the config writes, or None for another destination."""
    duck = _duckdb(config)
    return None if duck is None else _resolve(base_dir, duck.path)


def open_status(config: DestinationConfig | None, base_dir: Path) -> StatusReader | None:
    """A read-only view of the committed state; None when a DuckDB file does not exist yet.

    Raises :class:`LockedError` while a DuckDB file is held by a running ``afterload run``.
    """
    duck = _duckdb(config)
    if duck is None:
        assert config is not None and config.postgres is not None
        try:
            from afterload.destinations.postgres.status import PostgresStatus
        except ImportError:
            raise _postgres_needed() from None
        return PostgresStatus.from_config(config.postgres)
    from afterload.destinations.duckdb.status import DuckDBStatus

    path = _resolve(base_dir, duck.path)
    if not path.exists():
        return None
    return DuckDBStatus(path, duck.schema_)


def probe_destination(config: DestinationConfig | None, base_dir: Path) -> str:
    """Reach the destination without writing; a sentence saying what was found.

    Raises :class:`AfterloadError` with one sentence when it cannot be reached. A DuckDB file
    held by a running ``afterload run`` is fine: that is the normal state of a live one.
    """
    path = duckdb_path(config, base_dir)
    if path is None:
        reader = open_status(config, base_dir)
        assert reader is not None
        reader.close()
        return f"{reader.name} is reachable"
    if not path.exists():
        if not path.parent.is_dir():
            raise AfterloadError(f"{path}: the folder {path.parent} does not exist")
        return f"{path} will be created at the first commit"
    try:
        reader = open_status(config, base_dir)
    except LockedError as exc:
        return f"{path} is in use: {exc}"
    if reader is not None:
        reader.close()
    return f"{path} opens"


def _resolve(base_dir: Path, relative: str) -> Path:
    p = Path(relative).expanduser()
    return p if p.is_absolute() else base_dir / p
