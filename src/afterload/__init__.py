"""afterload: land JSON streams in a warehouse, exactly once, and keep dbt Cloud jobs fresh.

The Python API. Nothing here prints: progress and decisions are logged through :mod:`logging`
(logger ``afterload``), and every error raised is an :class:`AfterloadError` whose message is
the one sentence the CLI prints.

>>> import afterload
>>> cfg = afterload.load_config("shop.yaml")        # doctest: +SKIP
>>> report = afterload.materialize(cfg, once=True)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from afterload.errors import AfterloadError, ConfigError

__version__ = "0.1.0"

if TYPE_CHECKING:
    from afterload.config.load import LoadedConfig
    from afterload.core.materializer import Materializer
    from afterload.destinations.base import Destination
    from afterload.pipeline import Report
    from afterload.triggers.runner import JobTrigger

__all__ = [
    "AfterloadError",
    "ConfigError",
    "Destination",
    "JobTrigger",
    "LoadedConfig",
    "Materializer",
    "Report",
    "__version__",
    "load_config",
    "materialize",
    "open_destination",
]


def load_config(path: str | Path) -> LoadedConfig:
    """Read and validate a config file; :class:`ConfigError` lists every problem at once."""
    from afterload.config.load import load_config as load

    return load(path)


def materialize(cfg: LoadedConfig, *, once: bool = True, wait: bool = False) -> Report:
    """Materialize ``cfg``'s bindings into its destination and tell its triggers.

    ``once`` reads what is there, commits it and returns; ``wait`` then waits for the dbt run
    the final fire started. Returns a :class:`Report` (documents, rows, transactions, runs).
    """
    from afterload.pipeline import materialize as run

    return run(cfg, once=once, wait=wait)


def open_destination(cfg: LoadedConfig) -> Destination:
    """The config's destination, not yet opened: ``open(name)`` raises its fence."""
    from afterload.destinations.factory import open_destination as factory

    return factory(cfg.config.destination, cfg.base_dir)


def __getattr__(name: str) -> object:
    """Classes load on first use, so ``import afterload`` stays light."""
    if name == "Materializer":
        from afterload.core.materializer import Materializer

        return Materializer
    if name == "JobTrigger":
        from afterload.triggers.runner import JobTrigger

        return JobTrigger
    if name == "Report":
        from afterload.pipeline import Report

        return Report
    if name == "LoadedConfig":
        from afterload.config.load import LoadedConfig

        return LoadedConfig
    if name == "Destination":
        from afterload.destinations.base import Destination

        return Destination
    raise AttributeError(f"module 'afterload' has no attribute {name!r}")
