"""The ``destination`` block: exactly one of the destinations, each block beside its backend."""

from __future__ import annotations

from pydantic import model_validator

from afterload.destinations.duckdb.config import DuckDBConfig
from afterload.destinations.postgres.config import PostgresConfig
from afterload.fields import Strict

__all__ = ["DestinationConfig", "DuckDBConfig", "PostgresConfig"]


class DestinationConfig(Strict):
    """Exactly one of the destinations."""

    duckdb: DuckDBConfig | None = None
    postgres: PostgresConfig | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> DestinationConfig:
        if (self.duckdb is None) == (self.postgres is None):
            raise ValueError("give exactly one of duckdb or postgres")
        return self
