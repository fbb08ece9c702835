"""The destination interface: what the runtime needs from a warehouse, and nothing more.

A destination is *authoritative* for the checkpoint, as Estuary's SQL materializations are: the
rows of a transaction and the checkpoint after it commit in one destination transaction, and a
fence number raised at open makes a second or stale process unable to commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from afterload.core.checkpoint import BindingCheckpoint, Checkpoint
from afterload.core.column_names import ColumnNames
from afterload.core.schema import ColumnType, TableShape
from afterload.core.transaction import StagedLines
from afterload.errors import AfterloadError

INTERNAL_PREFIX = "_afterload_"
"""Tables afterload keeps beside the data begin so: the checkpoints, the run ledger, work tables."""
REBUILD_SUFFIX = "__afterload_rebuild"
"""The interim table a column's type is rebuilt in (DuckDB): ``{table}__afterload_rebuild``."""


def internal_table(name: str) -> bool:
    """Whether ``name`` is afterload's own: a binding writing it would replace checkpoints or
    ledger rows, or meet a work table (names ignore case)."""
    lowered = name.lower()
    return lowered.startswith(INTERNAL_PREFIX) or lowered.endswith(REBUILD_SUFFIX)


class DestinationError(AfterloadError):
    """The destination refused or failed: locked, fenced off, or a statement failed."""


def widening_refused(where: str, table: str, column: str, value: object) -> str:
    """Why an inferred BIGINT column that met a fraction cannot become DOUBLE: a value stored
    by an earlier process would be rounded (this process's own are caught line by line)."""
    return (
        f"{where}: column {column} of table {table} met a number with a fraction but cannot "
        f"widen from BIGINT to DOUBLE: it holds {value}, which a DOUBLE would round; nothing "
        f"of this transaction was committed (declare {column} an integer in the binding's "
        "schema to make such numbers bad lines)"
    )


class FencedError(DestinationError):
    """Another process opened the same materialization after this one."""


class LockedError(DestinationError):
    """Another process holds the destination (DuckDB's file lock)."""


@dataclass(slots=True)
class TableWrite:
    """One binding's rows for one commit, as raw NDJSON lines (reduced already)."""

    binding: str
    table: str
    shape: TableShape
    upserts: list[bytes]
    deletes: list[bytes] = field(default_factory=list)
    embedded_document: bool = False
    """The document column comes from each line's ``flow_document`` property, not the whole
    line (the Flow driver: its rows are fields, its document is the runtime's)."""
    staged: StagedLines | None = None
    """Lines a survey found usual, unreduced, in a file (then ``upserts`` is empty)."""
    written: int | None = None
    """Rows the destination wrote from ``staged`` (known after the commit)."""

    @property
    def rows(self) -> int:
        """Rows written (upserts and deletes; a staged write's own count once committed)."""
        if self.staged is not None:
            return self.written if self.written is not None else self.staged.documents
        return len(self.upserts) + len(self.deletes)

    @property
    def delta(self) -> bool:
        return self.shape.delta


@dataclass(slots=True)
class Recovered:
    """The committed state: what :meth:`Destination.open` found (with the fence it raised),
    or what :meth:`StatusReader.read_checkpoint` read without raising it."""

    checkpoint: Checkpoint
    fence: int
    committed_at: datetime | None
    transactions: int
    others: dict[str, dict[str, BindingCheckpoint]] = field(default_factory=dict)
    """The tables each other materialization in the same schema loads, with the key and mode
    it loads them by (its checkpoint): a table merged by one key and appended to, or merged
    by another, loses rows."""


def others_tables(rows: Iterable[tuple[str, str]]) -> dict[str, dict[str, BindingCheckpoint]]:
    """``(materialization, checkpoint JSON)`` rows → each one's tables, as it loads them."""
    return {name: dict(Checkpoint.from_json(text).bindings) for name, text in rows}


class Destination(Protocol):
    name: str
    """How to name the destination in messages (a file path, a host and database)."""
    stores_nul: bool
    """Whether strings may hold U+0000; if not, such lines are bad lines (rejects), found
    while reading rather than at commit."""
    wide_ints: int | None
    """Bits of the widest integer column (DuckDB's HUGEINT: 128); None for no limit
    (PostgreSQL's NUMERIC). An integer past it is a bad line, never a rounded number."""
    empty_names: bool
    """Whether a column may be named ``""`` (PostgreSQL maps every name; DuckDB cannot):
    if not, a line with such a property is a bad line, worded with its file and line."""
    far_offsets: bool
    """Whether a date-time may carry an offset of 16 hours or more whatever its year
    (PostgreSQL reads offsets up to 15:59 only, so such a value outside the years 0001 to
    9999 in UTC is a bad line there)."""
    column_names: ColumnNames | None
    """How columns are named when not by their property (PostgreSQL); None: by the property."""
    optional_document: bool
    """Whether a binding may leave ``flow_document`` out (``store_document: false``)."""

    def open(self, materialization: str) -> Recovered:
        """Connect, raise the fence, and return the checkpoint to resume from."""
        ...

    def columns(self, table: str) -> dict[str, ColumnType] | None:
        """An existing table's columns (None if there is no such table)."""
        ...

    def commit(
        self, writes: list[TableWrite], checkpoint: Checkpoint, published_at: datetime
    ) -> None:
        """Write the rows and the checkpoint atomically; FencedError if fenced off."""
        ...

    def close(self) -> None: ...


class LineSurveyor(Protocol):
    """A destination that reads JSON lines itself: it surveys a transaction's lines so that
    usual ones need no parsing in Python (see :mod:`afterload.core.survey`)."""

    def survey(
        self,
        shape: TableShape,
        key_pointers: list[str],
        blocks: list[bytes],
        *,
        hard_delete: bool,
    ) -> StagedLines | None:
        """The lines (``blocks`` of lines joined by newlines) staged for the destination if
        usual (``shape`` grown to fit), else None."""
        ...

    def close(self) -> None: ...


def surveyor_for(destination: Destination) -> LineSurveyor | None:
    """The destination's surveyor, if it reads JSON lines itself (DuckDB)."""
    make = getattr(destination, "surveyor", None)
    return None if make is None else make()


class DocumentLoader(Protocol):
    """Reads stored documents by key (the Flow driver's Loads), outside any commit."""

    def load_documents(self, table: str, shape: TableShape, keys: list[bytes]) -> list[str]:
        """The ``flow_document`` (JSON text) of each row whose key is in ``keys`` (JSON lines
        of the key properties); absent keys give nothing."""
        ...


class StatusReader(Protocol):
    """Read-only access to the committed state, for ``afterload status`` and ``check``."""

    name: str

    def read_checkpoint(self, materialization: str) -> Recovered | None: ...

    def other_tables(self, materialization: str) -> dict[str, dict[str, BindingCheckpoint]]:
        """:attr:`Recovered.others`, read-only (``check``: this materialization may have no
        row yet)."""
        ...

    def row_count(self, table: str) -> int | None: ...

    def close(self) -> None: ...
