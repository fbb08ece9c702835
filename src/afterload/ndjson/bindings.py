"""The NDJSON driver's bindings at run time: each one's source, table shape, parser, rejects.

Built once per run from the config, the destination's existing tables and the committed
checkpoint, so each binding resumes its files and its rejects file where the last commit left
them.
"""

from __future__ import annotations

from dataclasses import dataclass

from afterload.core.checkpoint import BindingCheckpoint, Checkpoint
from afterload.core.documents import DocumentParser
from afterload.core.jsonschema import load_json_schema, shape_from_json_schema
from afterload.core.schema import ColumnType, LineProblem, SchemaError, TableShape
from afterload.destinations.base import Destination, LineSurveyor, surveyor_for
from afterload.errors import ConfigError
from afterload.ndjson.config import Binding, LoadedNdjson
from afterload.ndjson.rejects import RejectsFile
from afterload.ndjson.sources import Source
from afterload.ndjson.validation import binding_problems, changed_keys, shared_tables


@dataclass
class BindingState:
    """One binding at run time: its source, its table shape, its rejects file."""

    binding: Binding
    source: Source
    shape: TableShape
    parser: DocumentParser
    rejects: RejectsFile | None
    rejects_size: int = 0
    rejects_recorded: bool = False
    """Whether the committed checkpoint already holds the rejects file's size."""
    surveyor: LineSurveyor | None = None
    """Set when the destination reads the lines itself (DuckDB): Python then parses only
    transactions its survey finds something unusual in."""

    @property
    def table(self) -> str:
        return self.binding.table

    def checkpoint(self) -> BindingCheckpoint:
        """This binding's position now: every file's offset, the rejects file's size."""
        return BindingCheckpoint(
            files=self.source.positions(),
            rejects=self.rejects_size if self.rejects is not None else None,
            key=list(self.binding.key),
            delta=self.binding.delta_updates,
        )


def _shape(loaded: LoadedNdjson, binding: Binding, destination: Destination) -> TableShape:
    table = binding.table
    if binding.schema_ is not None:
        schema = load_json_schema(table, loaded.resolve(binding.schema_))
        shape = shape_from_json_schema(
            table,
            binding.key,
            schema,
            delta=binding.delta_updates,
            wide_ints=destination.wide_ints,
            empty_names=destination.empty_names,
            far_offsets=destination.far_offsets,
            column_names=destination.column_names,
        )
    else:
        shape = TableShape(
            table,
            binding.key,
            delta=binding.delta_updates,
            wide_ints=destination.wide_ints,
            empty_names=destination.empty_names,
            far_offsets=destination.far_offsets,
            column_names=destination.column_names,
        )
    if not binding.store_document:
        if not destination.optional_document:
            raise SchemaError(
                f"{table}: store_document: false is not supported by {destination.name}; "
                "only the DuckDB destination can leave flow_document out"
            )
        shape.store_document = False
    for name, ctype in (destination.columns(table) or {}).items():
        if name not in shape.columns:
            try:
                shape.add(name, ctype)
            except LineProblem as exc:
                raise SchemaError(f"{table}: {exc.reason}") from None
        elif shape.columns[name].type is not ctype and (
            not shape.columns[name].declared or ctype is ColumnType.HUGEINT
        ):
            shape.widen(name, ctype)  # a declared integer may be held wider, never narrower
    return shape


def _binding(
    loaded: LoadedNdjson, binding: Binding, destination: Destination, entry: BindingCheckpoint
) -> BindingState:
    shape = _shape(loaded, binding, destination)
    source = Source(binding.source, loaded.base_dir, dict(entry.files))
    rejects = None
    size = 0
    if binding.rejects is not None:
        rejects = RejectsFile(loaded.resolve(binding.rejects), binding.rejects)
        if entry.rejects is not None:
            size = entry.rejects
            rejects.recover(size)
        else:
            size = rejects.size()
    parser = DocumentParser(
        shape, binding.key, hard_delete=binding.hard_delete, forbid_nul=not destination.stores_nul
    )
    # A nested key (a/b) is read by pointer in the writer; its lines take the exact path.
    surveyor = None if shape.projections else surveyor_for(destination)
    return BindingState(
        binding,
        source,
        shape,
        parser,
        rejects,
        size,
        rejects_recorded=entry.rejects is not None,
        surveyor=surveyor,
    )


def build_bindings(
    loaded: LoadedNdjson,
    destination: Destination,
    checkpoint: Checkpoint,
    others: dict[str, dict[str, BindingCheckpoint]] | None = None,
) -> list[BindingState]:
    """Every binding of the config, resumed from ``checkpoint``; :class:`ConfigError` with the
    same lines as ``check`` if the config cannot run (:mod:`afterload.ndjson.validation`);
    ``others``: the tables other materializations of the destination load."""
    problems = binding_problems(loaded) or (
        changed_keys(loaded, checkpoint) + shared_tables(loaded, others or {})
    )
    if problems:
        raise ConfigError(problems)
    return [
        _binding(loaded, binding, destination, checkpoint.binding(binding.table))
        for binding in loaded.config.bindings
    ]
