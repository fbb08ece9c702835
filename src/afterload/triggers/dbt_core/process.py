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
import ctypes
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import yaml

from afterload.durations import format_duration
from afterload.triggers.dbt_core.config import DbtCoreTrigger, FireContext
from afterload.triggers.dbt_core.locks import DuckDBTurns, RunSlot
from afterload.triggers.dbt_core.logs import parse_line
from afterload.triggers.dbt_core.results import DbtResult, RunResults, failure_sentence

log = logging.getLogger("afterload.trigger.dbt_core")

#: SIGINT lets dbt cancel its queries; SIGTERM and SIGKILL follow after this many seconds each.
GRACE = 10.0
_PR_SET_PDEATHSIG = 1
#: What dbt's own ``dbt`` script runs, with the interpreter afterload runs on.
_ENTRY = "import sys; from dbt.cli.main import cli; sys.argv[0] = 'dbt'; sys.exit(cli())"
#: dbt's events that mean a signal interrupted it.
INTERRUPTED = frozenset({"LogCancelLine", "MainKeyboardInterrupt"})


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str
    seconds: float


class DbtRun:
    """One dbt child process; :meth:`result` waits for its end."""

    def __init__(
        self, proc: asyncio.subprocess.Process, command: str, target: Path, fds: list[int]
    ) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.command = command
        self.target = target
        self.started = time.monotonic()
        self._fds = fds
        self._stop_reason: Literal["cancelled", "timeout"] | None = None
        self._invocation: str | None = None
        self._error: str | None = None
        self._last_text = ""
        self._interrupted = False  # dbt said it was interrupted (by us or another process)
        self.task: asyncio.Task[DbtResult] | None = None

    async def result(self) -> DbtResult:
        assert self.task is not None
        return await asyncio.shield(self.task)

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    async def interrupt(self, grace: float = GRACE, *, reason: str = "cancelled") -> None:
        """SIGINT, then SIGTERM after ``grace``, then SIGKILL: dbt gets to cancel its queries."""
        if self._stop_reason is None:
            self._stop_reason = "timeout" if reason == "timeout" else "cancelled"
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if self.proc.returncode is not None:
                break
            _signal_group(self.pid, sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.proc.wait()), grace)

    async def _pump(self) -> None:
        assert self.proc.stdout is not None
        while True:
            try:
                raw = await self.proc.stdout.readline()
            except ValueError:  # a line past the buffer limit: drop its rest
                raw = await self.proc.stdout.read(1 << 16)
            if not raw:
                return
            line = parse_line(raw.decode("utf-8", "replace"))
            if line.invocation_id and self._invocation is None:
                self._invocation = line.invocation_id
            if line.name in INTERRUPTED:
                self._interrupted = True
            if line.error and self._error is None and line.name not in INTERRUPTED:
                self._error = line.error
            if line.text:
                self._last_text = line.text
                log.log(line.level, "dbt: %s", line.text)

    async def _watch(self, timeout: float, grace: float) -> DbtResult:
        pump = asyncio.create_task(self._pump())
        try:
            try:
                await asyncio.wait_for(asyncio.shield(self.proc.wait()), timeout)
            except TimeoutError:
                await self.interrupt(grace, reason="timeout")
            await self.proc.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pump, grace)
        finally:
            pump.cancel()
            _signal_group(self.pid, signal.SIGKILL)  # whatever it left behind in its group
            for fd in self._fds:
                os.close(fd)  # our copies of the slot and the turn: now they are free
            self._fds = []
        return self._conclude(timeout)

    def _conclude(self, timeout: float) -> DbtResult:
        rc = self.proc.returncode
        seconds = time.monotonic() - self.started
        found = RunResults.read(self.target / "run_results.json", self._invocation)
        if self._invocation is None:
            found = None  # without dbt's invocation id we cannot tell the file is ours
        cmd = self.command

        def done(
            outcome: Literal["success", "error", "cancelled", "timeout"], msg: str
        ) -> DbtResult:
            return DbtResult(
                outcome=outcome, message=msg, returncode=rc, seconds=seconds, run_results=found
            )

        if self._stop_reason == "timeout":
            limit = format_duration_seconds(timeout)
            return done("timeout", f"dbt {cmd} did not finish within {limit} and was stopped")
        if self._stop_reason == "cancelled":
            return done("cancelled", f"dbt {cmd} (pid {self.pid}) was interrupted")
        if rc == 0:
            nodes = len(found.results) if found else 0
            return done("success", f"dbt {cmd} succeeded: {nodes} nodes in {seconds:.1f}s")
        if self._interrupted or rc in (-signal.SIGINT, -signal.SIGTERM):
            return done("cancelled", f"dbt {cmd} (pid {self.pid}) was interrupted from outside")
        if rc is not None and rc < 0:
            name = signal.Signals(-rc).name
            return done("error", f"dbt {cmd} (pid {self.pid}) was killed by {name}")
        if found is not None and not found.success:
            return done("error", failure_sentence(cmd, found))
        why = self._error or self._last_text or f"exit status {rc}"
        return done("error", f"dbt {cmd} failed: {why}")


def format_duration_seconds(seconds: float) -> str:
    return format_duration(timedelta(seconds=round(seconds, 3)))


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

    async def check(self) -> CheckResult:
        """``dbt parse``: proves the project and the profile (rendered, adapter known) without
        opening the warehouse, so it needs no DuckDB turn and writes only dbt's target/."""
        started = time.monotonic()
        problem = self.preflight()
        if problem:
            return CheckResult(False, problem, time.monotonic() - started)
        args = self._args("parse", None)
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self._child_env(),
            start_new_session=True,
        )
        out, _ = await proc.communicate()
        seconds = time.monotonic() - started
        if proc.returncode == 0:
            return CheckResult(True, f"dbt parse of {self.settings.project_dir} passed", seconds)
        why = ""
        for raw in out.decode("utf-8", "replace").splitlines():
            line = parse_line(raw)
            why = why or (line.error or "")
        return CheckResult(False, f"dbt parse failed: {why or 'see the dbt log'}", seconds)

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
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
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
            if not _signal_group(pid, sig):
                return
            deadline = time.monotonic() + self.grace
            # another process's child: only its lock file can tell us it ended, no event
            while self.slot.holder() == pid and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            if self.slot.holder() != pid:
                return
