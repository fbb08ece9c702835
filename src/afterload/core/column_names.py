"""How a destination names a property's column when not by the name itself (PostgreSQL:
names it cannot hold are shortened and hashed, and its system columns' names are taken).

The table shape asks it when a column is added, so that a property the destination has no
column for, or two properties that would meet in one column, are a bad line naming its file
and line, never a failed commit."""

from __future__ import annotations

from typing import Protocol

from afterload.core.values import LineProblem


class ColumnNames(Protocol):
    def column(self, prop: str) -> str:
        """The column's name; :class:`~afterload.core.values.LineProblem` if the destination
        can have no column for ``prop``."""
        ...

    def renamed(self, prop: str) -> str | None:
        """Why the column is not named ``prop`` (a clause for a message), or None."""
        ...


def physical_name(names: ColumnNames | None, taken: dict[str, str], prop: str) -> str | None:
    """``prop``'s column name in the destination (None: ``prop`` itself); LineProblem if it
    has none, or if another property's column (``taken``: column → property) has it."""
    if names is None:
        return None
    physical = names.column(prop)
    other = taken.get(physical)
    if other is not None and other != prop:
        why = "; ".join(w for p in (prop, other) if (w := names.renamed(p)) is not None)
        raise LineProblem(
            f"property {prop!r} and property {other!r} would both be column {physical!r}"
            + (f" ({why})" if why else "")
        )
    return physical
