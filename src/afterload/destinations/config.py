"""The ``destination`` block: exactly one of the destinations, each with its own settings."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from afterload.fields import MEMORY_PATTERN, Strict


class DuckDBConfig(Strict):
    """An embedded DuckDB database file."""

    path: str = Field(
        default="afterload.duckdb",
        description="The DuckDB database file, relative to the config file.",
    )
    schema_: str = Field(default="main", alias="schema", description="The schema of the tables.")
    memory_limit: str | None = Field(
        default=None,
        pattern=MEMORY_PATTERN,
        description="DuckDB's memory limit, e.g. 1GB; DuckDB's default is 80% of the RAM.",
    )


class PostgresConfig(Strict):
    """A PostgreSQL server; the password is a secret (never logged, never in an error)."""

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


class DestinationConfig(Strict):
    """Exactly one of the destinations."""

    duckdb: DuckDBConfig | None = None
    postgres: PostgresConfig | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> DestinationConfig:
        if (self.duckdb is None) == (self.postgres is None):
            raise ValueError("give exactly one of duckdb or postgres")
        return self
