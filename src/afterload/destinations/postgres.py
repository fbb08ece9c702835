"""PostgreSQL: tables and checkpoint in one server database, written with ``COPY``.

Each commit is one server transaction holding the rows of every binding, the checkpoint and the
fence check, so a crash or a lost connection leaves either all of it or none. Rows are encoded to
``COPY`` text in Python (one parse per document, values checked by the runtime already) and
streamed while the server ingests them, so the two run on different cores:

* a table that is new or empty, or a delta-updates table, gets its rows by ``COPY`` straight in;
* otherwise rows go by ``COPY`` into a temporary table and one
  ``INSERT … ON CONFLICT (key) DO UPDATE`` merges them (the last document per key wins);
* hard deletes go by ``COPY`` into a temporary table of keys and one ``DELETE … USING``.

Identifiers are always quoted, so property names keep their case, spaces, quotes and reserved
words. PostgreSQL silently cuts names longer than 63 bytes, so a name that does not fit is
renamed by one rule (see :func:`pg_identifier`); the column's comment keeps the property's real
name, which is how :meth:`PostgresDestination.columns` maps it back.

Only one process may hold a materialization: :meth:`PostgresDestination.open` takes a session
advisory lock (a second process is refused) and raises the fence (a process that lost its lock,
e.g. across a lost connection, and whose place was taken, can never commit again). A connection
lost during a commit is re-established and the whole commit redone from the rows still in
memory, a bounded number of times with backoff; a commit whose ``COMMIT`` was sent but not
acknowledged is recognised by its checkpoint and never applied twice.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from afterload.core import exactjson
from afterload.core.checkpoint import Checkpoint
from afterload.core.exactjson import dumps
from afterload.core.schema import DOCUMENT_COLUMN, PUBLISHED_COLUMN, ColumnType, TableShape
from afterload.destinations.base import (
    DestinationError,
    FencedError,
    LockedError,
    Recovered,
    TableWrite,
)

if TYPE_CHECKING:
    from afterload.destinations.config import PostgresConfig

log = logging.getLogger("afterload.postgres")

T = TypeVar("T")
Connection = psycopg.Connection[tuple[Any, ...]]
Cursor = psycopg.Cursor[tuple[Any, ...]]

CHECKPOINTS = "_afterload_checkpoints"
MAX_IDENTIFIER_BYTES = 63
"""PostgreSQL's NAMEDATALEN - 1: longer names are cut by the server without an error."""
_HASH_CHARS = 8
_LOCK_CLASS = 0x6166_746C
"""The first key of our advisory locks (``aftl``), so they never meet another application's."""
_COLUMN_COMMENT = "afterload: document property "
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_CHUNK_ROWS = 2048
_PROBE_KEYS = 1000
_CONNECT_TIMEOUT = 10
_LOST_STATES = (pgerrors.AdminShutdown, pgerrors.CrashShutdown, pgerrors.CannotConnectNow)

PG_TYPES: dict[ColumnType, str] = {
    ColumnType.BIGINT: "BIGINT",
    ColumnType.HUGEINT: "NUMERIC",
    ColumnType.DOUBLE: "DOUBLE PRECISION",
    ColumnType.BOOLEAN: "BOOLEAN",
    ColumnType.VARCHAR: "TEXT",
    ColumnType.TIMESTAMPTZ: "TIMESTAMPTZ",
    ColumnType.DATE: "DATE",
    ColumnType.JSON: "JSONB",
}
_FROM_PG: dict[str, ColumnType] = {
    "bigint": ColumnType.BIGINT,
    "integer": ColumnType.BIGINT,
    "smallint": ColumnType.BIGINT,
    "numeric": ColumnType.HUGEINT,  # integers past 64 bits
    "double precision": ColumnType.DOUBLE,
    "real": ColumnType.DOUBLE,
    "boolean": ColumnType.BOOLEAN,
    "text": ColumnType.VARCHAR,
    "character varying": ColumnType.VARCHAR,
    "timestamp with time zone": ColumnType.TIMESTAMPTZ,
    "date": ColumnType.DATE,
    "jsonb": ColumnType.JSON,
    "json": ColumnType.JSON,
}


# -------------------------------------------------------------------------------------------
# Names


def pg_identifier(name: str) -> str:
    """The column or table name PostgreSQL holds for ``name``.

    A name of at most 63 bytes (UTF-8) without NUL characters is kept as it is. Any other name
    (too long, empty, or containing NUL) becomes its first bytes, cut at a character boundary so
    that the result is at most 63 bytes, then ``_`` and the first 8 hex digits of the SHA-256
    of the whole name: stable across runs, readable, and distinct for distinct names (two
    names that still meet are reported as an error by the caller).
    """
    raw = name.encode()
    if raw and len(raw) <= MAX_IDENTIFIER_BYTES and b"\x00" not in raw:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:_HASH_CHARS]
    head = raw.replace(b"\x00", b"")[: MAX_IDENTIFIER_BYTES - _HASH_CHARS - 1]
    return head.decode("utf-8", errors="ignore") + "_" + digest


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _pointer(name: str) -> str:
    return "/" + name.replace("~", "~0").replace("/", "~1")


# -------------------------------------------------------------------------------------------
# Connection settings


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
        """A session in UTC, or one sentence saying why not (DestinationError or _Lost)."""
        kwargs: dict[str, Any] = {}
        if self._password is not None:
            kwargs["password"] = self._password
        try:
            conn = psycopg.connect(self.conninfo, autocommit=autocommit, **kwargs)
        except psycopg.Error as exc:
            permanent, sentence = self._describe_connect_error(exc)
            if permanent:
                raise DestinationError(sentence) from None
            raise _Lost(sentence) from None
        try:
            conn.execute("SET TIME ZONE 'UTC'")
            if not autocommit:
                conn.commit()
        except psycopg.Error as exc:
            conn.close()
            raise _Lost(self.scrub(_first_line(exc))) from None
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


class _Lost(Exception):
    """The connection is gone or could not be made, for a reason that may pass: retry."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class _BadValue(Exception):
    """A value PostgreSQL cannot hold (a NUL character); the reason names the property."""


def _server_reason(text: str) -> str:
    """The server's own words from a libpq message, without the ``connection to …`` preamble."""
    line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    for marker in ("FATAL:", "ERROR:"):
        if marker in line:
            return line.split(marker, 1)[1].strip()
    if " failed: " in line:
        return line.rsplit(" failed: ", 1)[1].strip()
    return line


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -------------------------------------------------------------------------------------------
# COPY text encoding


_NULL = "\\N"
_TIMESTAMP_CACHE: dict[str, str] = {}


def _escape(text: str) -> str:
    """COPY text format: backslash, tab, newline and carriage return are escaped."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = (
            text.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return text


def _has_nul_escape(json_text: str) -> bool:
    """True if JSON text holds ``\\u0000``, which neither TEXT nor JSONB can store."""
    start = json_text.find("\\u0000")
    while start >= 0:
        slashes = 0
        i = start
        while i > 0 and json_text[i - 1] == "\\":
            slashes += 1
            i -= 1
        if slashes % 2 == 0:
            return True
        start = json_text.find("\\u0000", start + 1)
    return False


Encoder = Callable[[Any], str]


def _encoder(prop: str, ctype: ColumnType) -> Encoder:
    """A function from a document value (never None) to its COPY text."""
    where = _pointer(prop)

    def bad(value: Any) -> _BadValue:
        return _BadValue(f"{where} holds {value!r}, which a {PG_TYPES[ctype]} column cannot hold")

    if ctype is ColumnType.BIGINT or ctype is ColumnType.HUGEINT:
        wide = ctype is ColumnType.HUGEINT

        def integer(value: Any) -> str:
            # The shape checked the range; a float here is one a declared integer column took
            # because it is integral and small enough to be exact.
            if type(value) is int:
                if wide or _INT64_MIN <= value <= _INT64_MAX:
                    return str(value)
            elif type(value) is float and value.is_integer():
                return str(int(value))
            raise bad(value)

        return integer
    if ctype is ColumnType.DOUBLE:

        def double(value: Any) -> str:
            if type(value) is float or type(value) is int:
                return repr(value)
            raise bad(value)

        return double
    if ctype is ColumnType.BOOLEAN:

        def boolean(value: Any) -> str:
            if value is True:
                return "t"
            if value is False:
                return "f"
            raise bad(value)

        return boolean
    if ctype is ColumnType.VARCHAR:

        def text(value: Any) -> str:
            if type(value) is not str:
                raise bad(value)
            if "\x00" in value:
                raise _BadValue(f"{where} has a NUL character, which PostgreSQL cannot store")
            return _escape(value)

        return text
    if ctype is ColumnType.TIMESTAMPTZ:

        def timestamp(value: Any) -> str:
            # Python's reading of ISO 8601 was the check; hand PostgreSQL the same instant in
            # the one form it surely reads (forms such as week dates it would not).
            try:
                return datetime.fromisoformat(value).isoformat()
            except (TypeError, ValueError):
                raise bad(value) from None

        return timestamp
    if ctype is ColumnType.DATE:

        def day(value: Any) -> str:
            try:
                return date.fromisoformat(value).isoformat()
            except (TypeError, ValueError):
                raise bad(value) from None

        return day

    def json_value(value: Any) -> str:
        out = dumps(value)
        if "\\" in out:
            if _has_nul_escape(out):
                raise _BadValue(f"{where} has a NUL character (\\u0000), which JSONB cannot store")
            out = out.replace("\\", "\\\\")
        return out

    return json_value


Plan = list[tuple[str, Encoder]]


def _document_text(raw: bytes) -> str:
    text = raw.decode()
    if "\\" in text and _has_nul_escape(text):
        raise _BadValue("the document has a NUL character (\\u0000), which JSONB cannot store")
    return _escape(text)


def encode_rows(lines: Iterable[bytes], plan: Plan, stamp: str) -> Iterator[bytes]:
    """COPY text for whole rows (the plan's columns, the document, the commit time), in chunks."""
    loads = exactjson.loads
    tail = "\t" + stamp
    rows: list[str] = []
    for raw in lines:
        doc = loads(raw)
        values = [_NULL if (v := doc.get(n)) is None else enc(v) for n, enc in plan]
        values.append(_document_text(raw))
        rows.append("\t".join(values) + tail)
        if len(rows) >= _CHUNK_ROWS:
            rows.append("")
            yield "\n".join(rows).encode()
            rows = []
    if rows:
        rows.append("")
        yield "\n".join(rows).encode()


def encode_keys(lines: Iterable[bytes], plan: Plan) -> Iterator[bytes]:
    """COPY text for the keys of deleted documents; a key no column could hold is skipped."""
    rows: list[str] = []
    for raw in lines:
        doc = exactjson.loads(raw)
        try:
            values = [_NULL if (v := doc.get(n)) is None else enc(v) for n, enc in plan]
        except _BadValue:
            continue  # no row can have this key
        rows.append("\t".join(values))
        if len(rows) >= _CHUNK_ROWS:
            rows.append("")
            yield "\n".join(rows).encode()
            rows = []
    if rows:
        rows.append("")
        yield "\n".join(rows).encode()


# -------------------------------------------------------------------------------------------
# Tables


@dataclass(slots=True)
class _Column:
    prop: str
    physical: str
    type: ColumnType


@dataclass(slots=True)
class _Table:
    name: str
    qualified: str
    columns: dict[str, _Column] = field(default_factory=dict)


def _column_comment(prop: str) -> str:
    return _COLUMN_COMMENT + orjson.dumps(prop).decode()


def _prop_from_comment(physical: str, comment: str | None) -> str:
    if comment and comment.startswith(_COLUMN_COMMENT):
        try:
            value = orjson.loads(comment[len(_COLUMN_COMMENT) :])
        except orjson.JSONDecodeError:
            return physical
        if isinstance(value, str) and pg_identifier(value) == physical:
            return value
    return physical


def _literal(conn: Connection, text: str) -> str:
    return sql.Literal(text).as_string(conn)


# -------------------------------------------------------------------------------------------
# The destination


class PostgresDestination:
    """Implements :class:`afterload.destinations.base.Destination` on a PostgreSQL schema."""

    stores_nul = False  # neither TEXT nor JSONB can hold U+0000
    wide_ints: int | None = None  # NUMERIC holds any integer

    def __init__(
        self,
        settings: ConnectSettings,
        *,
        attempts: int = 6,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        lock_wait: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.schema = settings.schema
        self.name = f"PostgreSQL {settings.where}, schema {settings.schema!r}"
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.lock_wait = lock_wait
        self._sleep = sleep
        self._conn: Connection | None = None
        self._old_pids: set[int] = set()
        self._materialization: str | None = None
        self._fence = 0
        self._transactions = 0
        self._tables: dict[str, _Table] = {}
        self._merge_only: set[str] = set()
        """Tables whose keys met existing rows: skip the attempt to COPY straight in."""
        self.reconnects = 0
        """How many times a lost connection was re-established (for tests and logs)."""

    @classmethod
    def from_config(cls, config: PostgresConfig) -> PostgresDestination:
        return cls(ConnectSettings.from_config(config))

    def __repr__(self) -> str:
        return f"PostgresDestination({self.name})"

    def _q(self, table: str) -> str:
        return f"{quote(self.schema)}.{quote(pg_identifier(table))}"

    @property
    def _lock_key(self) -> str:
        return f"{self.schema}.{self._materialization}"

    # -- retries -----------------------------------------------------------------------------

    def _retrying(self, what: str, attempt: Callable[[], T]) -> T:
        """Run ``attempt``, reconnecting after a lost connection, a bounded number of times."""
        delay = self.backoff
        for number in range(1, self.attempts + 1):
            try:
                return attempt()
            except _Lost as lost:
                self._drop()
                if number == self.attempts:
                    raise DestinationError(
                        f"{self.name}: {what} failed {self.attempts} times because the "
                        f"connection was lost or could not be made; last: {lost.reason}"
                    ) from None
                log.warning(
                    "%s: %s: %s; trying again in %.1fs (attempt %d of %d)",
                    self.name,
                    what,
                    lost.reason,
                    delay,
                    number + 1,
                    self.attempts,
                )
                self._sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        """Forget a broken connection; its transaction is rolled back by the server."""
        conn, self._conn = self._conn, None
        self._tables.clear()
        if conn is not None:
            pid = _backend_pid(conn)
            if pid:
                self._old_pids.add(pid)
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _is_lost(self, exc: BaseException) -> bool:
        if isinstance(exc, _LOST_STATES):
            return True
        if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return False
        conn = self._conn
        return conn is None or conn.closed or conn.broken

    def _failed(self, exc: psycopg.Error, what: str) -> Exception:
        """Turn a psycopg error into _Lost (retry) or one clear DestinationError."""
        if self._is_lost(exc):
            return _Lost(self.settings.scrub(_first_line(exc)))
        self._rollback()
        reason = self.settings.scrub(_first_line(exc))
        if isinstance(exc, pgerrors.InsufficientPrivilege):
            return DestinationError(
                f"user {self.settings.user!r} lacks a permission in schema {self.schema!r} of "
                f"{self._server_db} ({what}): {reason}"
            )
        return DestinationError(f"{self.name}: {what} failed: {reason}")

    def _rollback(self) -> None:
        self._tables.clear()  # DDL is rolled back too: read the catalog again
        conn = self._conn
        if conn is not None and not conn.closed:
            try:
                conn.rollback()
            except psycopg.Error:
                self._drop()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            raise DestinationError(f"{self.name} is not open")
        return self._conn

    def open(self, materialization: str) -> Recovered:
        self._materialization = materialization
        try:
            return self._retrying("opening the materialization", self._open_once)
        except BaseException:
            self.close()  # no session (and no lock) left behind by a failed open
            raise

    def _open_once(self) -> Recovered:
        self._drop()
        self._conn = self.settings.connect(autocommit=False)
        conn = self._conn
        try:
            with conn.cursor() as cur:
                self._prepare_schema(cur)
                conn.commit()
                self._take_lock(cur, wait=self.lock_wait)
                cur.execute(
                    f"INSERT INTO {self._q(CHECKPOINTS)} VALUES (%s, 0, '{{}}', NULL, 0) "
                    "ON CONFLICT DO NOTHING",
                    [self._materialization],
                )
                row = cur.execute(
                    f"UPDATE {self._q(CHECKPOINTS)} SET fence = fence + 1 "
                    "WHERE materialization = %s "
                    "RETURNING fence, checkpoint::text, committed_at, transactions",
                    [self._materialization],
                ).fetchone()
                conn.commit()
        except psycopg.Error as exc:
            raise self._failed(exc, "opening the materialization") from None
        assert row is not None
        self._fence = int(row[0])
        self._transactions = int(row[3])
        return Recovered(
            checkpoint=Checkpoint.from_json(row[1]),
            fence=self._fence,
            committed_at=row[2],
            transactions=self._transactions,
        )

    def _prepare_schema(self, cur: Cursor) -> None:
        """Create the schema and the checkpoint table if missing, one process at a time."""
        cur.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [_LOCK_CLASS, "schema " + self.schema]
        )
        exists = cur.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", [self.schema]
        ).fetchone()
        if exists is None:
            try:
                cur.execute(f"CREATE SCHEMA {quote(self.schema)}")
            except pgerrors.InsufficientPrivilege:
                self._rollback()
                raise DestinationError(
                    f"user {self.settings.user!r} may not create schema {self.schema!r} in "
                    f"{self._server_db}; create it or grant CREATE on the database"
                ) from None
        if cur.execute("SELECT to_regclass(%s)", [self._q(CHECKPOINTS)]).fetchone() == (None,):
            try:
                cur.execute(
                    f"CREATE TABLE {self._q(CHECKPOINTS)} ("
                    "materialization TEXT PRIMARY KEY, fence BIGINT NOT NULL, "
                    "checkpoint JSONB NOT NULL, committed_at TIMESTAMPTZ, "
                    "transactions BIGINT NOT NULL)"
                )
            except pgerrors.InsufficientPrivilege:
                self._rollback()
                raise DestinationError(
                    f"user {self.settings.user!r} may not create tables in schema "
                    f"{self.schema!r} of {self._server_db}; grant CREATE on the schema"
                ) from None
            comment = (
                "afterload: the committed checkpoint (source offsets) and fence of each "
                "materialization; written in the same transaction as the data"
            )
            cur.execute(
                f"COMMENT ON TABLE {self._q(CHECKPOINTS)} IS {_literal(cur.connection, comment)}"
            )

    @property
    def _server_db(self) -> str:
        s = self.settings
        return f"database {s.database!r} on {s.host}:{s.port}"

    def _take_lock(self, cur: Cursor, *, wait: float) -> None:
        """The session lock that refuses a second process; waits a little for a dying one."""
        deadline = time.monotonic() + wait
        while True:
            row = cur.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(%s))", [_LOCK_CLASS, self._lock_key]
            ).fetchone()
            cur.connection.commit()
            if row is not None and row[0]:
                return
            holder = self._lock_holder(cur)
            if holder is not None and holder[0] in self._old_pids:
                # Our own session from before the connection was lost, not yet noticed dead.
                cur.execute("SELECT pg_terminate_backend(%s)", [holder[0]])
                cur.connection.commit()
            elif time.monotonic() >= deadline:
                who = (
                    f"backend pid {holder[0]}, client {holder[1] or 'local'}, "
                    f"application {holder[2] or '?'}"
                    if holder is not None
                    else "unknown session"
                )
                raise LockedError(
                    f"materialization {self._materialization!r} in schema {self.schema!r} of "
                    f"{self._server_db} is held by another afterload process ({who}); stop it "
                    "first or use another name or schema"
                )
            time.sleep(0.1)

    def _lock_holder(self, cur: Cursor) -> tuple[int, str | None, str | None] | None:
        row = cur.execute(
            "SELECT l.pid, host(a.client_addr), a.application_name FROM pg_locks l "
            "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid = %s::int4::oid AND l.objid = hashtext(%s)::oid AND l.objsubid = 2",
            [_LOCK_CLASS, self._lock_key],
        ).fetchone()
        cur.connection.commit()
        return None if row is None else (int(row[0]), row[1], row[2])

    def _attach(self, pending: Checkpoint | None) -> bool:
        """Make sure we are connected and still own the materialization.

        After a lost connection: reconnect, take the lock again, and check the fence. True if
        the connection died after the server committed ``pending`` (nothing left to do).
        """
        if self._conn is not None:
            return False
        if self._materialization is None:
            raise DestinationError(f"{self.name} is not open")
        self._conn = self.settings.connect(autocommit=False)
        self.reconnects += 1
        conn = self._conn
        try:
            with conn.cursor() as cur:
                try:
                    self._take_lock(cur, wait=self.lock_wait)
                except LockedError:
                    raise FencedError(self._taken_over_message()) from None
                row = cur.execute(
                    f"SELECT fence, checkpoint::text, transactions FROM {self._q(CHECKPOINTS)} "
                    "WHERE materialization = %s",
                    [self._materialization],
                ).fetchone()
                conn.commit()
        except psycopg.Error as exc:
            raise self._failed(exc, "reconnecting") from None
        if row is None or int(row[0]) != self._fence:
            raise FencedError(self._taken_over_message())
        transactions = int(row[2])
        if transactions == self._transactions:
            log.info("%s: reconnected; the interrupted commit is done again", self.name)
            return False
        if (
            pending is not None
            and transactions == self._transactions + 1
            # A JSONB round trip may change the text but not the value: compare values.
            and Checkpoint.from_json(row[1]) == pending
        ):
            log.info("%s: reconnected; the interrupted commit had been committed", self.name)
            return True
        raise FencedError(self._taken_over_message())

    def _taken_over_message(self) -> str:
        return (
            f"materialization {self._materialization!r} in schema {self.schema!r} of "
            f"{self._server_db} was taken over by another process while the connection was "
            "lost; this one stops without committing"
        )

    def close(self) -> None:
        conn, self._conn = self._conn, None
        self._tables.clear()
        self._materialization = None  # a commit after close must not reconnect
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()  # ends the session: the lock goes with it

    # -- tables ------------------------------------------------------------------------------

    def columns(self, table: str) -> dict[str, ColumnType] | None:
        def attempt() -> dict[str, ColumnType] | None:
            self._attach(None)
            try:
                with self.conn.cursor() as cur:
                    found = self._describe(cur, table)
                self.conn.commit()
            except psycopg.Error as exc:
                raise self._failed(exc, f"reading the columns of {table}") from None
            if found is None:
                return None
            return {c.prop: c.type for c in found.columns.values()}

        return self._retrying(f"reading the columns of {table}", attempt)

    def _describe(self, cur: Cursor, table: str) -> _Table | None:
        cached = self._tables.get(table)
        if cached is not None:
            return cached
        qualified = self._q(table)
        rows = cur.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), "
            "col_description(a.attrelid, a.attnum) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum",
            [qualified],
        ).fetchall()
        if not rows:
            return None
        found = _Table(table, qualified)
        for physical, pgtype, comment in rows:
            if physical in (DOCUMENT_COLUMN, PUBLISHED_COLUMN):
                continue
            base = str(pgtype).split("(")[0]
            prop = _prop_from_comment(physical, comment)
            found.columns[prop] = _Column(prop, physical, _FROM_PG.get(base, ColumnType.JSON))
        self._tables[table] = found
        return found

    def _physical_names(self, binding: str, shape: TableShape) -> dict[str, str]:
        names: dict[str, str] = {}
        seen: dict[str, str] = {
            DOCUMENT_COLUMN: "afterload's " + DOCUMENT_COLUMN,
            PUBLISHED_COLUMN: "afterload's " + PUBLISHED_COLUMN,
        }
        for col in shape.ordered():
            physical = pg_identifier(col.name)
            other = seen.get(physical)
            if other is not None:
                raise DestinationError(
                    f"{binding}: property {_pointer(col.name)} and {other} would both be "
                    f"column {physical!r} in PostgreSQL (names over 63 bytes are shortened); "
                    "rename one of them"
                )
            seen[physical] = "property " + _pointer(col.name)
            names[col.name] = physical
        return names

    def _evolve(self, cur: Cursor, write: TableWrite) -> tuple[_Table, bool]:
        """Bring the table in line with the shape; True if it was created now (so empty)."""
        shape = write.shape
        names = self._physical_names(write.binding, shape)
        existing = self._describe(cur, write.table)
        conn = cur.connection
        qualified = self._q(write.table)
        if existing is None:
            defs = []
            for col in shape.ordered():
                null = " NOT NULL" if col.key else ""
                defs.append(f"{quote(names[col.name])} {PG_TYPES[col.type]}{null}")
            defs.append(f"{quote(DOCUMENT_COLUMN)} JSONB NOT NULL")
            defs.append(f"{quote(PUBLISHED_COLUMN)} TIMESTAMPTZ NOT NULL")
            if not shape.delta and shape.key:
                defs.append(f"PRIMARY KEY ({', '.join(quote(names[k]) for k in shape.key)})")
            cur.execute(f"CREATE TABLE {qualified} ({', '.join(defs)})")
            kind = "every document appended (delta updates)" if shape.delta else "one row per key"
            comment = (
                f"afterload: materialized from binding {write.binding!r}, {kind}; "
                f"{DOCUMENT_COLUMN} holds the whole document, {PUBLISHED_COLUMN} its commit time"
            )
            cur.execute(f"COMMENT ON TABLE {qualified} IS {_literal(conn, comment)}")
            for col in shape.ordered():
                self._comment_column(cur, qualified, names[col.name], col.name)
            cur.execute(
                f"COMMENT ON COLUMN {qualified}.{quote(DOCUMENT_COLUMN)} IS "
                f"{_literal(conn, 'afterload: the whole document, as read')}"
            )
            cur.execute(
                f"COMMENT ON COLUMN {qualified}.{quote(PUBLISHED_COLUMN)} IS "
                f"{_literal(conn, 'afterload: when the transaction holding it was committed')}"
            )
            table = _Table(
                write.table,
                qualified,
                {c.name: _Column(c.name, names[c.name], c.type) for c in shape.ordered()},
            )
            self._tables[write.table] = table
            return table, True
        for col in shape.ordered():
            have = existing.columns.get(col.name)
            physical = names[col.name]
            if have is None:
                cur.execute(
                    f"ALTER TABLE {qualified} ADD COLUMN {quote(physical)} {PG_TYPES[col.type]}"
                )
                self._comment_column(cur, qualified, physical, col.name)
                existing.columns[col.name] = _Column(col.name, physical, col.type)
                log.info("%s: added column %s %s", write.table, physical, PG_TYPES[col.type])
            elif have.type is not col.type:
                if col.type is ColumnType.DOUBLE and have.type is ColumnType.BIGINT:
                    cur.execute(
                        f"ALTER TABLE {qualified} ALTER COLUMN {quote(physical)} "
                        "TYPE DOUBLE PRECISION"
                    )
                    have.type = ColumnType.DOUBLE
                    log.info("%s: widened column %s to DOUBLE PRECISION", write.table, physical)
                elif col.type is ColumnType.HUGEINT and have.type is ColumnType.BIGINT:
                    cur.execute(
                        f"ALTER TABLE {qualified} ALTER COLUMN {quote(physical)} TYPE NUMERIC"
                    )
                    have.type = ColumnType.HUGEINT
                    log.info(
                        "%s: column %s holds integers past 64 bits: now NUMERIC",
                        write.table,
                        physical,
                    )
                else:
                    raise DestinationError(
                        f"{write.binding}: column {physical!r} of {write.table} is "
                        f"{PG_TYPES[have.type]} but the binding has {PG_TYPES[col.type]} "
                        f"for property {_pointer(col.name)}"
                    )
        return existing, False

    def _comment_column(self, cur: Cursor, qualified: str, physical: str, prop: str) -> None:
        text = _literal(cur.connection, _column_comment(prop))
        cur.execute(f"COMMENT ON COLUMN {qualified}.{quote(physical)} IS {text}")

    # -- commits -----------------------------------------------------------------------------

    def commit(
        self, writes: list[TableWrite], checkpoint: Checkpoint, published_at: datetime
    ) -> None:
        stamp = published_at.astimezone(UTC).isoformat()
        text = checkpoint.to_json()

        def attempt() -> None:
            if self._attach(checkpoint):
                return
            self._commit_once(writes, text, stamp)

        self._retrying("the commit", attempt)
        self._transactions += 1

    def _commit_once(self, writes: list[TableWrite], checkpoint: str, stamp: str) -> None:
        conn = self.conn
        try:
            with conn.cursor() as cur:
                row = cur.execute(
                    f"SELECT fence FROM {self._q(CHECKPOINTS)} WHERE materialization = %s "
                    "FOR UPDATE",
                    [self._materialization],
                ).fetchone()
                if row is None or int(row[0]) != self._fence:
                    raise FencedError(self._fenced_message())
                for write in writes:
                    self._write(cur, write, stamp)
                done = cur.execute(
                    f"UPDATE {self._q(CHECKPOINTS)} SET checkpoint = %s::jsonb, "
                    "committed_at = %s::timestamptz, transactions = transactions + 1 "
                    "WHERE materialization = %s AND fence = %s RETURNING fence",
                    [checkpoint, stamp, self._materialization, self._fence],
                ).fetchall()
                if len(done) != 1:
                    raise FencedError(self._fenced_message())
            conn.commit()
        except (FencedError, DestinationError):
            self._rollback()
            raise
        except psycopg.Error as exc:
            raise self._failed(exc, "the commit") from None

    def _write(self, cur: Cursor, write: TableWrite, stamp: str) -> None:
        table, created = self._evolve(cur, write)
        try:
            self._write_rows(cur, write, table, created, stamp)
        except _BadValue as bad:
            raise DestinationError(
                f"{write.binding}: {bad}; the transaction is not committed"
            ) from None

    def _plan(self, table: _Table, shape: TableShape, names: list[str]) -> Plan:
        return [(n, _encoder(n, shape.columns[n].type)) for n in names]

    def _write_rows(
        self, cur: Cursor, write: TableWrite, table: _Table, created: bool, stamp: str
    ) -> None:
        shape = write.shape
        keys = shape.key
        if write.deletes and keys:
            key_cols = ", ".join(quote(table.columns[k].physical) for k in keys)
            defs = ", ".join(
                f"{quote(table.columns[k].physical)} {PG_TYPES[table.columns[k].type]}"
                for k in keys
            )
            cur.execute(f"CREATE TEMP TABLE pg_temp._afterload_deletes ({defs}) ON COMMIT DROP")
            self._copy(
                cur,
                f"pg_temp._afterload_deletes ({key_cols})",
                encode_keys(write.deletes, self._plan(table, shape, keys)),
            )
            cond = " AND ".join(
                f"t.{quote(table.columns[k].physical)} = d.{quote(table.columns[k].physical)}"
                for k in keys
            )
            cur.execute(
                f"DELETE FROM {table.qualified} t USING pg_temp._afterload_deletes d WHERE {cond}"
            )
            cur.execute("DROP TABLE pg_temp._afterload_deletes")
        if not write.upserts:
            return
        names = [c.name for c in shape.ordered()]
        plan = self._plan(table, shape, names)
        target = ", ".join(
            [
                *(quote(table.columns[n].physical) for n in names),
                quote(DOCUMENT_COLUMN),
                quote(PUBLISHED_COLUMN),
            ]
        )
        into = f"{table.qualified} ({target})"
        if shape.delta or not keys or created:
            self._copy(cur, into, encode_rows(write.upserts, plan, stamp))
            return
        if table.name not in self._merge_only and self._all_new(cur, table, shape, write):
            # A backfill brings new keys: COPY straight in is about twice as fast as staging
            # and merging. Should a key exist after all, the savepoint undoes the attempt.
            cur.execute("SAVEPOINT afterload_append")
            try:
                self._copy(cur, into, encode_rows(write.upserts, plan, stamp))
            except pgerrors.UniqueViolation:
                cur.execute("ROLLBACK TO SAVEPOINT afterload_append")
                self._merge_only.add(table.name)
                log.info("%s: keys meet existing rows; merging from now on", table.name)
            else:
                cur.execute("RELEASE SAVEPOINT afterload_append")
                return
        cur.execute(
            f"CREATE TEMP TABLE pg_temp._afterload_rows (LIKE {table.qualified}) ON COMMIT DROP"
        )
        self._copy(
            cur, f"pg_temp._afterload_rows ({target})", encode_rows(write.upserts, plan, stamp)
        )
        key_cols = ", ".join(quote(table.columns[k].physical) for k in keys)
        updates = ", ".join(
            f"{c} = EXCLUDED.{c}"
            for c in [
                *(quote(table.columns[n].physical) for n in names if n not in keys),
                quote(DOCUMENT_COLUMN),
                quote(PUBLISHED_COLUMN),
            ]
        )
        cur.execute(
            f"INSERT INTO {table.qualified} ({target}) "
            f"SELECT {target} FROM pg_temp._afterload_rows "
            f"ON CONFLICT ({key_cols}) DO UPDATE SET {updates}"
        )
        cur.execute("DROP TABLE pg_temp._afterload_rows")

    def _all_new(self, cur: Cursor, table: _Table, shape: TableShape, write: TableWrite) -> bool:
        """True if a sample of the keys finds no existing row (a cheap index probe)."""
        keys = shape.key
        if any(table.columns[k].type is ColumnType.JSON for k in keys):
            return False
        columns: list[list[str | None]] = [[] for _ in keys]
        plans = self._plan(table, shape, keys)
        for raw in write.upserts[:_PROBE_KEYS]:
            doc = exactjson.loads(raw)
            for values, (name, enc) in zip(columns, plans, strict=True):
                value = doc.get(name)
                # Plain text for the parameter: only strings would differ from COPY's form.
                try:
                    values.append(value if type(value) is str else enc(value))
                except _BadValue:
                    return False
        types = [PG_TYPES[table.columns[k].type] for k in keys]
        physical = ", ".join(f"t.{quote(table.columns[k].physical)}" for k in keys)
        probes = ", ".join(f"%s::text[]::{t}[]" for t in types)
        row = cur.execute(
            f"SELECT EXISTS (SELECT 1 FROM {table.qualified} t WHERE ({physical}) IN "
            f"(SELECT * FROM unnest({probes})))",
            columns,
        ).fetchone()
        return row is not None and not row[0]

    def _copy(self, cur: Cursor, target: str, chunks: Iterator[bytes]) -> None:
        with cur.copy(f"COPY {target} FROM STDIN") as copy:
            for chunk in chunks:
                copy.write(chunk)

    def _fenced_message(self) -> str:
        return (
            f"materialization {self._materialization!r} in schema {self.schema!r} of "
            f"{self._server_db} was opened by another process after this one; this one stops "
            "without committing"
        )


def _backend_pid(conn: Connection) -> int | None:
    try:
        return int(conn.info.backend_pid) or None
    except (psycopg.Error, AttributeError):
        return None


# -------------------------------------------------------------------------------------------
# Status


class PostgresStatus:
    """Implements :class:`afterload.destinations.base.StatusReader`: read-only, no lock."""

    def __init__(self, settings: ConnectSettings) -> None:
        self.settings = settings
        self.schema = settings.schema
        self.name = f"PostgreSQL {settings.where}, schema {settings.schema!r}"
        try:
            self.conn = settings.connect(autocommit=True)
        except _Lost as lost:
            raise DestinationError(lost.reason) from None

    @classmethod
    def from_config(cls, config: PostgresConfig) -> PostgresStatus:
        return cls(ConnectSettings.from_config(config))

    def _q(self, table: str) -> str:
        return f"{quote(self.schema)}.{quote(pg_identifier(table))}"

    def _exists(self, table: str) -> bool:
        row = self.conn.execute("SELECT to_regclass(%s)", [self._q(table)]).fetchone()
        return row is not None and row[0] is not None

    def read_checkpoint(self, materialization: str) -> Recovered | None:
        try:
            if not self._exists(CHECKPOINTS):
                return None
            row = self.conn.execute(
                f"SELECT fence, checkpoint::text, committed_at, transactions "
                f"FROM {self._q(CHECKPOINTS)} WHERE materialization = %s",
                [materialization],
            ).fetchone()
        except psycopg.Error as exc:
            raise DestinationError(
                f"{self.name}: {self.settings.scrub(_first_line(exc))}"
            ) from None
        if row is None:
            return None
        return Recovered(
            checkpoint=Checkpoint.from_json(row[1]),
            fence=int(row[0]),
            committed_at=row[2],
            transactions=int(row[3]),
        )

    def row_count(self, table: str) -> int | None:
        try:
            if not self._exists(table):
                return None
            row = self.conn.execute(f"SELECT count(*) FROM {self._q(table)}").fetchone()
        except psycopg.Error as exc:
            raise DestinationError(
                f"{self.name}: {self.settings.scrub(_first_line(exc))}"
            ) from None
        return None if row is None else int(row[0])

    def close(self) -> None:
        self.conn.close()
