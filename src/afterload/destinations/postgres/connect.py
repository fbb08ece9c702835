"""Reaching the server: settings from config (the password a secret), one-sentence connect
errors that name host, database and user, and what counts as a lost connection."""

from __future__ import annotations

import getpass
import os
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from afterload.destinations.base import (
    DestinationError,
)
from afterload.destinations.sql import first_line

if TYPE_CHECKING:
    from afterload.destinations.postgres.config import PostgresConfig


Connection = psycopg.Connection[tuple[Any, ...]]


Cursor = psycopg.Cursor[tuple[Any, ...]]


_CONNECT_TIMEOUT = 10


LOST_STATES = (pgerrors.AdminShutdown, pgerrors.CrashShutdown, pgerrors.CannotConnectNow)


class ConnectSettings:
    """Where to connect, with the password kept apart so that it never reaches a message."""

    __slots__ = ("_password", "database", "host", "params", "port", "schema", "user")

    def __init__(self, params: dict[str, str], password: str | None, schema: str) -> None:
        self.params = params
        self._password = password or None
        self.schema = schema
        self.host = params.get("host") or os.environ.get("PGHOST") or "the local socket"
        self.port = params.get("port") or os.environ.get("PGPORT") or "5432"
        self.user = params.get("user") or os.environ.get("PGUSER") or getpass.getuser()
        self.database = params.get("dbname") or os.environ.get("PGDATABASE") or self.user

    @classmethod
    def from_config(cls, config: PostgresConfig) -> ConnectSettings:
        params: dict[str, str] = {}
        if config.dsn:
            try:
                parsed = conninfo_to_dict(config.dsn)
            except psycopg.Error:
                # libpq's message may quote parts of the string, the password among them.
                raise DestinationError(
                    "destination.postgres.dsn is not a valid libpq URI or key=value string"
                ) from None
            params = {k: str(v) for k, v in parsed.items() if v is not None}
        password = params.pop("password", None)
        for key, value in (
            ("host", config.host),
            ("port", config.port),
            ("user", config.user),
            ("dbname", config.database),
            ("sslmode", config.sslmode),
            ("connect_timeout", config.connect_timeout),
        ):
            if value is not None:
                params[key] = str(value)
        if config.password is not None:
            password = config.password.get_secret_value()
        return cls(params, password, config.schema_)

    @property
    def conninfo(self) -> str:
        """The libpq string without the password (safe to show), with our defaults added."""
        params = dict(self.params)
        params.setdefault("connect_timeout", str(_CONNECT_TIMEOUT))
        params.setdefault("application_name", "afterload")
        # A server that vanishes without closing the socket is noticed in about a minute.
        params.setdefault("keepalives", "1")
        params.setdefault("keepalives_idle", "30")
        params.setdefault("keepalives_interval", "10")
        params.setdefault("keepalives_count", "3")
        return make_conninfo(**params)

    @property
    def where(self) -> str:
        return f"database {self.database!r} on {self.host}:{self.port} as user {self.user!r}"

    def scrub(self, text: str) -> str:
        """Server text never holds the password, but make sure of it."""
        if self._password:
            text = text.replace(self._password, "***")
        return text

    def connect(self, *, autocommit: bool) -> Connection:
        """A session in UTC, or one sentence saying why not (DestinationError or Lost)."""
        kwargs: dict[str, Any] = {}
        if self._password is not None:
            kwargs["password"] = self._password
        try:
            conn = psycopg.connect(self.conninfo, autocommit=autocommit, **kwargs)
        except psycopg.Error as exc:
            permanent, sentence = self._describe_connect_error(exc)
            if permanent:
                raise DestinationError(sentence) from None
            raise Lost(sentence) from None
        try:
            conn.execute("SET TIME ZONE 'UTC'")
            if not autocommit:
                conn.commit()
        except psycopg.Error as exc:
            conn.close()
            raise Lost(self.scrub(first_line(exc))) from None
        return conn

    def _describe_connect_error(self, exc: Exception) -> tuple[bool, str]:
        text = self.scrub(str(exc))
        low = text.lower()
        server = f"PostgreSQL at {self.host}:{self.port}"
        if "password authentication failed" in low or "authentication failed" in low:
            return True, (
                f"{server} rejected the password of user {self.user!r} "
                f"(database {self.database!r}); check destination.postgres.password"
            )
        if "no password supplied" in low:
            return True, (
                f"{server} wants a password for user {self.user!r} (database "
                f"{self.database!r}) and none is configured; set destination.postgres.password"
            )
        if "role" in low and "does not exist" in low:
            return True, (
                f"{server} has no user {self.user!r} (connecting to database "
                f"{self.database!r}); check destination.postgres.user"
            )
        if "database" in low and "does not exist" in low:
            return True, (
                f"{server} has no database {self.database!r} (user {self.user!r}); "
                "create it or check destination.postgres.database"
            )
        if (
            "permission denied" in low
            or "not permitted to log in" in low
            or "pg_hba.conf" in low
            or "too many connections for role" in low
        ):
            reason = _server_reason(text)
            return True, (
                f"{server} does not let user {self.user!r} connect to database "
                f"{self.database!r}: {reason}"
            )
        if isinstance(exc, psycopg.ProgrammingError) or any(
            word in low for word in _SETTING_ERRORS
        ):
            # libpq refused a setting before reaching any server: no retry makes it pass.
            reason = text.split("connection is bad:", 1)[-1].strip()
            return (
                True,
                f"the connection settings are not valid: {reason}; check destination.postgres",
            )
        if "timeout expired" in low:
            timeout = self.params.get("connect_timeout", str(_CONNECT_TIMEOUT))
            return False, (
                f"{server} did not answer within {timeout}s (database {self.database!r}, "
                f"user {self.user!r})"
            )
        return False, (
            f"cannot connect to {server} (database {self.database!r}, user {self.user!r}): "
            f"{_server_reason(text)}"
        )


_SETTING_ERRORS = (
    "invalid sslmode value",
    "invalid port number",
    "invalid integer value",
    "invalid connection option",
    "invalid uri",
    "invalid value for parameter",
)
"""libpq's words for a setting it refuses before connecting (a typo, not an outage)."""


class Lost(Exception):
    """The connection is gone or could not be made, for a reason that may pass: retry."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _server_reason(text: str) -> str:
    """The server's own words from a libpq message, without the ``connection to …`` preamble."""
    line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    for marker in ("FATAL:", "ERROR:"):
        if marker in line:
            return line.split(marker, 1)[1].strip()
    if " failed: " in line:
        return line.rsplit(" failed: ", 1)[1].strip()
    return line


def backend_pid(conn: Connection) -> int | None:
    try:
        return int(conn.info.backend_pid) or None
    except (psycopg.Error, AttributeError):
        return None


def sql_literal(conn: Connection, text: str) -> str:
    return sql.Literal(text).as_string(conn)
