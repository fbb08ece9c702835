"""The one validation ``check``, ``run`` and the Python API share: what ``run`` would refuse.

Pydantic checks each block alone; this checks what only the whole config and the file system
tell — no bindings, two bindings on one table, a key that makes no table, a missing JSON Schema,
a destination or rejects file that cannot be written, a key other than the one the table was
loaded with (from the committed checkpoint, read-only) — without writing anything. ``run``
raises :class:`~afterload.errors.ConfigError` with exactly the lines ``check`` prints, so
``check`` passing means ``run`` starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from afterload.config.load import LoadedConfig
from afterload.core.checkpoint import BindingCheckpoint, Checkpoint
from afterload.destinations.factory import duckdb_path, open_status
from afterload.errors import ConfigError
from afterload.ndjson.validation import binding_problems, changed_keys, shared_tables
from afterload.writability import writability


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the answer: a problem ``run`` would refuse, or a note of what it will do."""

    subject: str
    """What it is about: ``bindings``, ``destination`` or ``dbt_job_trigger``."""
    text: str
    ok: bool


def preflight(loaded: LoadedConfig, *, committed_state: bool = True) -> list[Finding]:
    """Everything ``run`` would refuse in ``loaded`` (``ok=False``), and what it will create.

    ``committed_state`` reads the committed checkpoint (read-only) for a changed key; ``run``
    skips it: it checks the same, in the same words, on the checkpoint it opens anyway
    (``ndjson/bindings.build_bindings``), so its start opens the destination once."""
    findings = [Finding("bindings", p, False) for p in binding_problems(loaded)]
    committed, others = _committed(loaded) if committed_state else (None, {})
    if not findings:
        if committed is not None:
            findings += [Finding("bindings", p, False) for p in changed_keys(loaded, committed)]
        findings += [Finding("bindings", p, False) for p in shared_tables(loaded, others)]
    findings += [Finding("bindings", p, False) for p in _document_needed(loaded)]
    path = duckdb_path(loaded.config.destination, loaded.base_dir)
    if path is not None:
        findings += [Finding("bindings", p, False) for p in _rejects_on_database(loaded, path)]
        answer = writability(path)
        if answer.problem is not None:
            where = loaded.where("destination", "duckdb", "path")
            findings.append(Finding("destination", f"{where}: {answer.problem}", False))
        elif not path.exists():
            folder = f", with the folder {answer.creates}" if answer.creates else ""
            text = f"{path} will be created at the first commit{folder}"
            findings.append(Finding("destination", text, True))
    if loaded.config.trigger_cleared:
        text = "dbt_job_trigger is cleared (every field empty): no job will be triggered"
        findings.append(Finding("dbt_job_trigger", text, True))
    return findings


def _rejects_on_database(loaded: LoadedConfig, database: Path) -> list[str]:
    """Rejects files over the DuckDB file or those kept beside it (its write-ahead log,
    afterload's lock files), which appending lines would corrupt."""
    problems = []
    real = Path(os.path.realpath(database))
    for i, binding in enumerate(loaded.config.bindings):
        if binding.rejects is None:
            continue
        path = Path(os.path.realpath(loaded.resolve(binding.rejects)))
        if path == real or (path.parent == real.parent and path.name.startswith(f"{real.name}.")):
            problems.append(
                f"{loaded.where('bindings', i, 'rejects')}: {binding.rejects}: it is the "
                f"destination's DuckDB file or one kept beside it ({real.name}.*); name a "
                "file of its own"
            )
    return problems


def _document_needed(loaded: LoadedConfig) -> list[str]:
    """``store_document: false`` on PostgreSQL, which keeps every document (run refused it at
    its first commit)."""
    destination = loaded.config.destination
    if destination is None or destination.postgres is None:
        return []
    return [
        f"{loaded.where('bindings', i, 'store_document')}: store_document: false is not "
        "supported by PostgreSQL; only the DuckDB destination can leave flow_document out"
        for i, binding in enumerate(loaded.config.bindings)
        if not binding.store_document
    ]


def _committed(
    loaded: LoadedConfig,
) -> tuple[Checkpoint | None, dict[str, dict[str, BindingCheckpoint]]]:
    """The committed checkpoint and the tables other materializations load, read-only; none
    when there is none or it cannot be read now (a destination not reachable is said by
    ``check``'s own probe; ``run`` checks it again once it holds the destination)."""
    if loaded.config.destination is None or not loaded.config.bindings:
        return None, {}
    # Advisory: whatever keeps the state from being read here (a held or unreadable file, a
    # server down) is met again, and said, where run opens the destination.
    try:
        reader = open_status(loaded.config.destination, loaded.base_dir)
    except Exception:
        return None, {}
    if reader is None:
        return None, {}
    try:
        recovered = reader.read_checkpoint(loaded.name)
        others = reader.other_tables(loaded.name)
    except Exception:
        return None, {}
    finally:
        reader.close()
    return (None if recovered is None else recovered.checkpoint), others


def require_runnable(loaded: LoadedConfig) -> None:
    """Raise :class:`ConfigError` with every problem :func:`preflight` finds, before ``run``."""
    problems = [f.text for f in preflight(loaded, committed_state=False) if not f.ok]
    if problems:
        raise ConfigError(problems)
