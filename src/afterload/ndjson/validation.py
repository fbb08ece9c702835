"""What the NDJSON driver refuses in a config, found before any data moves.

One list of rules, asked by ``check`` and by ``run`` alike (through :mod:`afterload.preflight`,
and again by :func:`~afterload.ndjson.bindings.build_bindings`), so ``check`` passes exactly
what ``run`` accepts. Each problem is ``file:line: key.path: what is wrong``.
"""

from __future__ import annotations

import os

from afterload.core.checkpoint import BindingCheckpoint, Checkpoint
from afterload.core.jsonschema import load_json_schema, shape_from_json_schema
from afterload.core.schema import SchemaError, TableShape
from afterload.destinations.base import internal_table
from afterload.ndjson.config import Binding, LoadedNdjson
from afterload.ndjson.rejects_paths import glob_matches, same_file
from afterload.writability import writability


def _reason(exc: SchemaError, binding: Binding) -> str:
    return str(exc).removeprefix(f"{binding.table}: ")


def _shape_problem(loaded: LoadedNdjson, binding: Binding) -> tuple[str, str] | None:
    """The key (and the JSON Schema, if any) make a table: ``(key, reason)`` if they cannot."""
    dest = loaded.config.destination
    empty_names = dest is not None and dest.postgres is not None  # DuckDB: the default
    try:
        TableShape(binding.table, binding.key, delta=binding.delta_updates, empty_names=empty_names)
    except SchemaError as exc:
        return "key", _reason(exc, binding)
    if binding.schema_ is not None:
        try:
            schema = load_json_schema(binding.table, loaded.resolve(binding.schema_))
            shape_from_json_schema(
                binding.table,
                binding.key,
                schema,
                delta=binding.delta_updates,
                empty_names=empty_names,
            )
        except SchemaError as exc:
            return "schema", _reason(exc, binding)
    return None


def _rejects_read_back(loaded: LoadedNdjson, i: int, rejects: str) -> str | None:
    """Why bindings[i]'s rejects file would overwrite or feed a file afterload reads, if so."""
    path = loaded.resolve(rejects)
    if same_file(path, loaded.path):
        return "it is the config file itself; name a file of its own"
    for j, other in enumerate(loaded.config.bindings):
        if other.schema_ is not None and same_file(path, loaded.resolve(other.schema_)):
            return f"it is bindings[{j}]'s JSON Schema; name a file of its own"
        if other.source != "-" and glob_matches(loaded.base_dir, other.source, path):
            whose = "this binding's" if j == i else f"bindings[{j}]'s"
            return (
                f"{whose} source {other.source!r} matches it, so rejected lines would be read "
                "back as input; put the rejects file where no source glob matches"
            )
    return None


def binding_problems(loaded: LoadedNdjson) -> list[str]:
    """Every reason the bindings cannot run, one line each; empty when they can."""
    bindings = loaded.config.bindings
    if not bindings:
        return [f"{loaded.where('bindings')}: the config has no bindings, so run has nothing to do"]
    problems: list[str] = []
    tables: dict[str, int] = {}
    stdin: int | None = None
    rejects: dict[str, int] = {}
    for i, binding in enumerate(bindings):
        first = tables.setdefault(binding.table.lower(), i)
        if first != i:
            other = bindings[first].table
            problems.append(
                f"{loaded.where('bindings', i, 'table')}: {binding.table!r} is the table "
                f"bindings[{first}] writes ({other!r}; table names ignore case)"
            )
        if internal_table(binding.table):
            problems.append(
                f"{loaded.where('bindings', i, 'table')}: {binding.table!r} is a name afterload "
                "keeps for its own tables (checkpoints, run ledger, work tables); name the table "
                "otherwise"
            )
        if binding.source == "-":
            if stdin is not None:
                problems.append(
                    f"{loaded.where('bindings', i, 'source')}: bindings[{stdin}] reads standard "
                    "input already; only one binding can"
                )
            stdin = i if stdin is None else stdin
        found = _shape_problem(loaded, binding)
        if found is not None:
            problems.append(f"{loaded.where('bindings', i, found[0])}: {found[1]}")
        if binding.rejects is not None:
            path = os.path.realpath(loaded.resolve(binding.rejects))
            first = rejects.setdefault(path, i)
            if first != i:
                # Each binding keeps its rejects file's committed size in the checkpoint and
                # cuts the file back to it: two bindings would cut each other's rejects.
                problems.append(
                    f"{loaded.where('bindings', i, 'rejects')}: {binding.rejects}: bindings"
                    f"[{first}] writes its rejects there already; each binding needs its own file"
                )
            loop = _rejects_read_back(loaded, i, binding.rejects)
            if loop is not None:
                where = loaded.where("bindings", i, "rejects")
                problems.append(f"{where}: {binding.rejects}: {loop}")
            answer = writability(loaded.resolve(binding.rejects))
            if answer.problem is not None:
                problems.append(
                    f"{loaded.where('bindings', i, 'rejects')}: {binding.rejects}: the rejects "
                    f"file cannot be written ({answer.problem})"
                )
    return problems


def _loaded_by(key: list[str], delta: bool | None) -> str:
    """How a table is loaded, in a message's words."""
    return "delta updates" if delta else f"key {key}"


def changed_keys(loaded: LoadedNdjson, checkpoint: Checkpoint) -> list[str]:
    """A binding whose key (or delta mode) differs from the one its table was loaded with:
    its rows were merged by the old key, and merging by another would replace or keep rows
    the user never meant to (two keys of one table, or duplicates of a keyed one)."""
    problems = []
    for i, binding in enumerate(loaded.config.bindings):
        entry = checkpoint.bindings.get(binding.table)
        if entry is None or entry.key is None:
            continue
        if entry.key != list(binding.key) or entry.delta != binding.delta_updates:
            was = _loaded_by(entry.key, entry.delta)
            now = _loaded_by(list(binding.key), binding.delta_updates)
            problems.append(
                f"{loaded.where('bindings', i, 'key')}: table {binding.table!r} was loaded with "
                f"{was}, and the config now says {now}; a table keeps the key it was loaded "
                "with: load into a new table (another table name)"
            )
    return problems


def shared_tables(
    loaded: LoadedNdjson, others: dict[str, dict[str, BindingCheckpoint]]
) -> list[str]:
    """A binding into a table another materialization of the same destination loads by
    another key, or one appends to while the other merges: each merge deletes the rows of
    its keys, the other's included, while the other's checkpoint still counts them. Two
    that merge by one key (a load split in parts) or both append may share a table. Names
    compare as DuckDB's do."""
    loads = {
        t.casefold(): (name, entry)
        for name, tables in sorted(others.items())
        for t, entry in tables.items()
    }
    problems = []
    for i, binding in enumerate(loaded.config.bindings):
        found = loads.get(binding.table.casefold())
        if found is None:
            continue
        owner, entry = found
        if entry.key is None or entry.delta is None:
            continue  # an older checkpoint: how it loads the table is not known
        if entry.delta == binding.delta_updates and (entry.delta or entry.key == list(binding.key)):
            continue
        theirs = _loaded_by(entry.key, entry.delta)
        ours = _loaded_by(list(binding.key), binding.delta_updates)
        problems.append(
            f"{loaded.where('bindings', i, 'table')}: table {binding.table!r} is loaded by "
            f"materialization {owner!r} with {theirs}, and this binding says {ours}; its "
            "merges would delete the other's rows: give each its own table"
        )
    return problems
