"""The ``destination.postgres`` block: a libpq DSN or its parts; the password is a secret."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from afterload.fields import Strict


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

    @field_validator("schema_")
    @classmethod
    def _not_a_system_schema(cls, schema: str) -> str:
        """PostgreSQL keeps ``pg_*`` and ``information_schema`` for itself: no table can be
        created there, which run met only at its first statement."""
        if schema.lower().startswith("pg_") or schema.lower() == "information_schema":
            raise ValueError(
                f"{schema!r} is one of PostgreSQL's system schemas (pg_*, information_schema), "
                "where no table can be created; use another schema, such as public"
            )
        return schema
