"""Start-up: building the command line imports none of the heavy libraries, and a ``run --once``
without triggers imports none of the trigger machinery (ARCHITECTURE.md, start-up).

Each test runs a fresh interpreter and lists what it imported, so a top-level import added back
anywhere on the way fails here, with the module that came back in the message.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

#: What ``afterload --version`` or ``--help`` must not import: the config model (pydantic,
#: yaml), the destinations' drivers, the HTTP client and its retries, the event loop, the
#: metrics server, the templates, the progress bar, and afterload's own layers below the CLI.
NOT_AT_CLI_IMPORT = (
    "asyncio",
    "dotpromptz_handlebars",
    "duckdb",
    "httpx",
    "prometheus_client",
    "psycopg",
    "pydantic",
    "rich.logging",
    "rich.progress",
    "stamina",
    "yaml",
    "afterload.config",
    "afterload.core",
    "afterload.destinations",
    "afterload.ndjson",
    "afterload.pipeline",
    "afterload.triggers",
)

#: What a ``run --once`` of NDJSON into DuckDB, without any trigger, must not import.
NOT_IN_A_RUN_WITHOUT_TRIGGERS = (
    "asyncio",
    "dotpromptz_handlebars",
    "httpx",
    "prometheus_client",
    "psycopg",
    "rich.progress",
    "stamina",
    "afterload.durable_triggers",
    "afterload.metrics",
    "afterload.triggers.dbt_cloud.action",
    "afterload.triggers.dbt_core.action",
    "afterload.triggers.dbt_core.process",
    "afterload.triggers.runner",
    "afterload.triggers.webhook.runner",
)

_LIST = (
    "import atexit, json, sys\n"
    "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.__stdout__))\n"
)


def _imported(
    code: str, cwd: Path | None = None
) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The modules a fresh interpreter has imported when ``code`` ends (even by SystemExit)."""
    proc = subprocess.run(
        [sys.executable, "-c", _LIST + code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr
    return set(json.loads(lines[-1])), proc


def _found(modules: set[str], heavy: tuple[str, ...]) -> list[str]:
    """``heavy`` entries present in ``modules``, a package counting with any of its modules."""
    return sorted(h for h in heavy if any(m == h or m.startswith(h + ".") for m in modules))


@pytest.mark.parametrize("module", ["afterload.cli.app", "afterload.cli", "afterload"])
def test_importing_the_cli_imports_no_heavy_module(module: str) -> None:
    modules, _ = _imported(f"import {module}")
    assert module in modules
    assert _found(modules, NOT_AT_CLI_IMPORT) == []


def test_version_imports_no_heavy_module() -> None:
    code = (
        "import sys\nsys.argv = ['afterload', '--version']\nfrom afterload.cli import main\nmain()"
    )
    modules, proc = _imported(code)
    assert proc.returncode == 0 and "afterload " in proc.stdout, proc.stderr
    assert _found(modules, NOT_AT_CLI_IMPORT) == []


def test_a_run_without_triggers_imports_no_trigger_machinery(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "one.jsonl").write_text('{"id": 1, "a": "x"}\n{"id": 2, "a": "y"}\n')
    (tmp_path / "duck.yaml").write_text(
        "name: s\ndestination: {duckdb: {path: w.duckdb}}\n"
        "bindings: [{source: 'd/*.jsonl', table: t, key: [/id]}]\n"
    )
    code = (
        "import sys\nsys.argv = ['afterload', 'run', '--once', 'duck.yaml']\n"
        "from afterload.cli import main\nmain()"
    )
    modules, proc = _imported(code, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "loaded 2 documents" in proc.stderr
    assert {"duckdb", "afterload.pipeline"} <= modules  # it did run
    assert _found(modules, NOT_IN_A_RUN_WITHOUT_TRIGGERS) == []
