"""``afterload check``: the config, the destination, the dbt job — one ✓/✗ line each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape

from afterload.cli.app import ConfigArg, app, fail, out
from afterload.errors import AfterloadError, ConfigError

if TYPE_CHECKING:
    from afterload.config.load import LoadedConfig
    from afterload.triggers.dbt_cloud.config import DbtJobTrigger

# The config model, the destinations and the triggers load inside the functions that use them:
# building the command line must not import them (see ARCHITECTURE.md, start-up).

Outcome = Literal["ok", "warning", "failed"]
_MARKS = {"ok": "[green]✓[/green]", "warning": "[yellow]![/yellow]", "failed": "[red]✗[/red]"}


class Checks:
    """The results, printed as they come (text) or as one JSON object at the end.

    ``check --json`` keys: ``ok`` (bool: no check failed; warnings do not fail), ``checks``: a
    list of ``{"check": "config"|"destination"|"source"|"dbt_job", "outcome": "ok"|"warning"|
    "failed", "message": str}``, and with a config error, ``errors``: one sentence each.
    """

    def __init__(self, console: Console, *, as_json: bool) -> None:
        self.console = console
        self.as_json = as_json
        self.results: list[dict[str, str]] = []
        self.errors: list[str] = []
        self.exit_code = 0

    @property
    def failed(self) -> bool:
        return bool(self.errors) or any(r["outcome"] == "failed" for r in self.results)

    def add(self, check: str, outcome: Outcome, message: str) -> None:
        self.results.append({"check": check, "outcome": outcome, "message": message})
        if not self.as_json:
            self.console.print(
                f"{_MARKS[outcome]} {escape(message)}", soft_wrap=True, highlight=False, markup=True
            )

    def finish(self) -> int:
        code = self.exit_code or (1 if self.failed else 0)
        if self.as_json:
            body: dict[str, object] = {"ok": not self.failed, "checks": self.results}
            if self.errors:
                body["errors"] = self.errors
            self.console.out(json.dumps(body, ensure_ascii=False, indent=2), highlight=False)
        return code


def unmatched_sources(loaded: LoadedConfig) -> list[str]:
    """One warning per binding whose glob matches no file: ``run`` would read nothing there."""
    from afterload.ndjson.sources import Source

    warnings = []
    for binding in loaded.config.bindings:
        if binding.source == "-":
            continue
        if Source(binding.source, loaded.base_dir, {}).matches_nothing:
            warnings.append(f"{binding.table}: {binding.source} matches no file")
    return warnings


def _preflight(loaded: LoadedConfig, checks: Checks) -> None:
    """What ``run`` would refuse (✗) and what it will do (✓), in ``run``'s own words.

    A config without bindings but with a trigger is one ``afterload trigger`` uses: ``run``
    would refuse it, which is said, but it does not fail the check.
    """
    from afterload.preflight import preflight

    trigger_only = not loaded.config.bindings and bool(loaded.config.dbt_jobs())
    for finding in preflight(loaded):
        if finding.ok:
            checks.add(finding.subject, "ok", f"{finding.subject}: {finding.text}")
        elif trigger_only and finding.subject == "bindings":
            text = f"{finding.text} (`afterload trigger` works with this config)"
            checks.add(finding.subject, "warning", text)
        else:
            checks.add(finding.subject, "failed", finding.text)


@app.command()
def check(
    config: ConfigArg,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object: ok, checks, errors (see README).")
    ] = False,
) -> None:
    """Validate the config, reach the destination, and check access to the dbt Cloud job."""
    raise typer.Exit(run_checks(config, out, as_json=as_json))


def run_checks(config: Path, console: Console, *, as_json: bool = False) -> int:
    from afterload.config.load import load_config
    from afterload.destinations.factory import duckdb_path, probe_destination

    checks = Checks(console, as_json=as_json)
    try:
        loaded = load_config(config)
    except ConfigError as exc:
        if not as_json:
            console.print(f"[red]✗[/red] config {escape(str(config))}", markup=True)
            fail(exc)
        checks.add("config", "failed", f"config {config} is not valid")
        checks.errors.extend(exc.problems)
        checks.exit_code = exc.exit_code  # as without --json
        return checks.finish()
    checks.add("config", "ok", f"config {config} is valid")
    _preflight(loaded, checks)
    path = duckdb_path(loaded.config.destination, loaded.base_dir)
    if loaded.config.destination is not None and (path is None or path.exists()):
        try:
            found = probe_destination(loaded.config.destination, loaded.base_dir)
        except AfterloadError as exc:
            checks.add("destination", "failed", f"destination: {exc}")
        else:
            checks.add("destination", "ok", f"destination: {found}")
    for warning in unmatched_sources(loaded):
        checks.add("source", "warning", warning)
    if loaded.config.dbt_core_trigger is not None:
        check_dbt_core(loaded, checks)
    jobs = loaded.config.dbt_jobs()
    if not jobs:
        if not loaded.config.trigger_cleared and loaded.config.dbt_core_trigger is None:
            checks.add("dbt_job", "ok", "no dbt_job_trigger block: no job will be triggered")
        return checks.finish()
    for settings in jobs:
        _reach_job(settings, checks)
    return checks.finish()


def check_dbt_core(loaded: LoadedConfig, checks: Checks) -> None:
    """``dbt parse`` of the project with its profile: proves both without writing anything
    but dbt's own target/ folder (the warehouse is not opened)."""
    import asyncio

    from afterload.pipeline import dbt_core_action

    action = dbt_core_action(loaded)
    result = asyncio.run(action.runner.check())
    outcome: Outcome = "ok" if result.ok else "failed"
    checks.add("dbt_core", outcome, f"{result.message} ({result.seconds:.1f}s)")


def _reach_job(settings: DbtJobTrigger, checks: Checks) -> None:
    """One ✓/✗ result for one job."""
    import asyncio

    from afterload.triggers.dbt_cloud.action import DbtCloudAction
    from afterload.triggers.dbt_cloud.client import DbtCloudClient

    async def reach() -> str:
        # One attempt with a short timeout: a user is waiting for this answer.
        action = DbtCloudAction(settings, client=DbtCloudClient.interactive(settings.target()))
        try:
            return await action.check()
        finally:
            await action.client.aclose()

    try:
        checks.add("dbt_job", "ok", asyncio.run(reach()))
    except AfterloadError as exc:
        checks.add("dbt_job", "failed", f"dbt Cloud job {settings.job_id}: {exc}")
