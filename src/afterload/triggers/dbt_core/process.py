"""The shell: starts dbt in a child process, applies the mode, streams its log, reaps it.

dbt runs as its own CLI (``dbt.cli.main:cli``) on afterload's own interpreter (the extras install
dbt beside afterload), never in the loader's process: dbt imports take seconds and hold the
DuckDB file, and a crash or a hang in dbt must not touch a commit. The child is a session
leader (its pid is its process group, so stopping it reaches anything it started), inherits
the :class:`RunSlot` and :class:`DuckDBTurns` descriptors (the locks last as long as it does),
and gets SIGTERM if afterload dies (Linux), so no orphan keeps the DuckDB file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import yaml

from afterload.triggers.dbt_core.config import DbtCoreTrigger, FireContext
from afterload.triggers.dbt_core.locks import DuckDBTurns, RunSlot
from afterload.triggers.dbt_core.logs import LogLine, parse_line
from afterload.triggers.dbt_core.results import DbtResult, connection_problem
from afterload.triggers.dbt_core.run import GRACE, DbtRun, die_with_parent, log, signal_group

#: What dbt's own ``dbt`` script runs, with the interpreter afterload runs on.
ORPHAN_GUARD = (
    "import os, signal; _afterload = os.getppid(); "
    "signal.signal(signal.SIGTERM, lambda *_: os.killpg(0, signal.SIGKILL) "
    "if os.getppid() != _afterload else (signal.signal(signal.SIGTERM, signal.SIG_DFL), "
    "os.kill(os.getpid(), signal.SIGTERM)))"
)
"""First in the child: the SIGTERM that afterload's death sends (``PR_SET_PDEATHSIG``) takes
dbt's whole process group with it, so nothing dbt started (a Python model's subprocess)
outlives afterload; a SIGTERM while afterload lives does what it always did."""
_ENTRY = (
    ORPHAN_GUARD + "; import sys; from dbt.cli.main import cli; sys.argv[0] = 'dbt'; "
    "sys.exit(cli())"
)


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str
    seconds: float


@dataclass(frozen=True)
class DbtFire:
    """What one fire did: started a run, skipped (dbt still running), or failed to start."""

    kind: Literal["started", "skipped", "failed"]
    message: str
    run: DbtRun | None = field(default=None, compare=False)
    replaced: tuple[int, ...] = ()

    @property
    def started(self) -> bool:
        return self.kind == "started"


class DbtCoreRunner:
    """Applies ``mode`` and starts dbt; every process it starts is reaped by a task of its own."""

    def __init__(
        self,
        settings: DbtCoreTrigger,
        *,
        turns: DuckDBTurns | None = None,
        env: dict[str, str] | None = None,
        grace: float = GRACE,
        python: str = sys.executable,
    ) -> None:
        self.settings = settings
        self.turns = turns
        self.grace = grace
        self.python = python
        self.slot = RunSlot(settings.project_dir)
        self.target = settings.project_dir / "target"
        self.runs: list[DbtRun] = []
        self._env = dict(env or {})

    def __repr__(self) -> str:
        s = self.settings
        return f"DbtCoreRunner(dbt {s.command} in {s.project_dir}, mode={s.mode})"

    # -- what the trigger calls ------------------------------------------------------------

    async def fire(self, context: FireContext | None = None) -> DbtFire:
        """Apply the mode to a running dbt (ours or another process's), then start one."""
        problem = self.preflight()
        if problem:
            return DbtFire("failed", problem)
        slot = self.slot.try_take()
        replaced: tuple[int, ...] = ()
        if slot is None:
            holder = self.slot.holder()
            who = f"dbt (pid {holder})" if holder else "another dbt"
            if self.settings.mode == "skip":
                return DbtFire("skipped", f"skipped, {who} is running")
            if self.settings.mode == "replace" and holder is not None:
                await self._interrupt_pid(holder)
                replaced = (holder,)
            slot = await self.slot.take()  # ignore: wait for the running one to end
        try:
            turn = await self.turns.acquire_async() if self.turns is not None else None
        except BaseException:
            os.close(slot)
            raise
        fds = [slot] if turn is None else [slot, turn]
        try:
            run = await self._spawn(context or FireContext(), fds)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        RunSlot.record(slot, run.pid)
        verb = f"replaced dbt {list(replaced)} with" if replaced else "started"
        text = f"{verb} dbt {self.settings.command} (pid {run.pid})"
        log.info("%s", text)
        return DbtFire("started", text, run=run, replaced=replaced)

    async def run(self, context: FireContext | None = None) -> DbtResult | DbtFire:
        """One fire and, when it started dbt, its result (``trigger --wait``)."""
        fired = await self.fire(context)
        if fired.run is None:
            return fired
        return await fired.run.result()

    async def check(self, *, connection: bool = False) -> CheckResult:
        """``dbt parse``: proves the project and the profile (rendered, adapter known) without
        opening the warehouse, so it needs no DuckDB turn and writes only dbt's target/.
        ``connection`` adds ``dbt debug --connection`` (credentials, database reachable), which
        opens the warehouse: on DuckDB it takes a turn."""
        started = time.monotonic()
        problem = self.preflight()
        if problem:
            return CheckResult(False, problem, time.monotonic() - started)
        rc, lines = await self._quick(self._args("parse", None))
        if rc != 0:
            why = next((line.error for line in lines if line.error), None)
            # No dbt event (dbt could not even start): its last words, such as a traceback's.
            last = next((line.text.strip() for line in reversed(lines) if line.text.strip()), "")
            msg = f"dbt parse failed: {why or last or 'it printed nothing'}"
            return CheckResult(False, msg, time.monotonic() - started)
        if connection:
            args = [*self._args("debug", None), "--connection"]
            if self.turns is not None:
                fd = await self.turns.acquire_async()
                try:
                    rc, lines = await self._quick(args)
                finally:
                    os.close(fd)
            else:
                rc, lines = await self._quick(args)
            if rc != 0:
                text = "\n".join(ln.raw for ln in lines if ln.name == "DebugCmdResult")
                msg = f"dbt debug --connection failed: {connection_problem(text)}"
                return CheckResult(False, msg, time.monotonic() - started)
        what = "parse and connection" if connection else "parse"
        msg = f"dbt {what} of {self.settings.project_dir} passed"
        return CheckResult(True, msg, time.monotonic() - started)

    async def _quick(self, args: list[str]) -> tuple[int, list[LogLine]]:
        """A short dbt command run to its end, its output parsed (``check``)."""
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self._child_env(),
            start_new_session=True,
            limit=1 << 20,
        )
        try:
            out, _ = await proc.communicate()
        except BaseException:
            signal_group(proc.pid, signal.SIGKILL)
            raise
        text = out.decode("utf-8", "replace")
        return proc.returncode or 0, [parse_line(raw) for raw in text.splitlines()]

    async def stop(self, grace: float | None = None) -> None:
        """Interrupt every dbt this runner started and wait for them to be reaped."""
        for run in self.runs:
            if run.running:
                await run.interrupt(self.grace if grace is None else grace)
        for run in self.runs:
            with contextlib.suppress(Exception):
                await run.result()

    def preflight(self) -> str | None:
        """The mistakes a user can make before dbt starts, each as one sentence."""
        s = self.settings
        if not s.project_dir.is_dir():
            return f"dbt_core_trigger.project_dir: {s.project_dir} does not exist"
        if not (s.project_dir / "dbt_project.yml").is_file():
            return f"dbt_core_trigger.project_dir: {s.project_dir} has no dbt_project.yml"
        profiles = s.profiles / "profiles.yml"
        try:
            text = profiles.read_text(encoding="utf-8")
        except OSError:
            return f"dbt_core_trigger.profiles_dir: {profiles} does not exist"
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            what = getattr(exc, "problem", None) or "invalid YAML"
            return f"dbt_core_trigger.profiles_dir: {profiles}{where}: does not parse ({what})"
        if not isinstance(parsed, dict):
            return f"dbt_core_trigger.profiles_dir: {profiles} holds no profiles"
        return None

    # -- the child process -----------------------------------------------------------------

    def _args(self, command: str, context: FireContext | None) -> list[str]:
        s = self.settings
        args = [self.python, "-c", _ENTRY, "--log-format", "json", "--no-use-colors"]
        args += [command, "--project-dir", str(s.project_dir), "--profiles-dir", str(s.profiles)]
        if s.target:
            args += ["--target", s.target]
        if context is not None and s.select:
            args += ["--select", s.select]
        if context is not None and s.vars:
            rendered = s.rendered_vars(context, datetime.now(UTC))
            args += ["--vars", json.dumps(rendered, ensure_ascii=False)]
        return args

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        env.setdefault("DBT_VERSION_CHECK", "false")
        env.update(self._env)
        env["DBT_TARGET_PATH"] = str(self.target)  # where run_results.json and the slot live
        return env

    async def _spawn(self, context: FireContext, fds: list[int]) -> DbtRun:
        proc = await asyncio.create_subprocess_exec(
            *self._args(self.settings.command, context),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self._child_env(),
            start_new_session=True,
            pass_fds=tuple(fds),
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
            limit=1 << 20,
        )
        run = DbtRun(proc, self.settings.command, self.target, fds)
        timeout = self.settings.timeout.total_seconds()
        run.task = asyncio.create_task(run._watch(timeout, self.grace), name=f"dbt-{proc.pid}")
        self.runs = [r for r in self.runs if r.running] + [run]
        return run

    async def _interrupt_pid(self, pid: int) -> None:
        """Stop a dbt that holds the slot: ours through its handle, another's by its group."""
        for run in self.runs:
            if run.pid == pid and run.running:
                await run.interrupt(self.grace)
                return
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if not signal_group(pid, sig):
                return
            deadline = time.monotonic() + self.grace
            # another process's child: only its lock file can tell us it ended, no event
            while self.slot.holder() == pid and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            if self.slot.holder() != pid:
                return
