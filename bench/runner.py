"""One measurement per tool, destination, case and run, each load in its own process."""

from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import duckdb
import psycopg
import yaml
from bench_duckdb import DATA
from data import Data
from procs import Proc, ensure_venv, spawn
from settings import CASES, DLT_REQUIREMENTS, DLT_VENV, HERE, ROOT


@dataclass
class Figure:
    destination: str
    case: str
    tool: str
    run: int
    docs: int
    seconds: float = 0.0
    rss_kib: int = 0
    ok: bool = True
    note: str = ""


class Postgres:
    """The admin connection: scratch schemas, checkpoints, row counts.

    The server is shared and may be restarted under us (other engineers' tests do), so every
    statement reconnects and tries again for up to a minute.
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: psycopg.Connection[Any] | None = None
        self.schemas: set[str] = set()

    def execute(self, sql: str) -> Any:
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = psycopg.connect(self.dsn, autocommit=True)
                cur = self.conn.execute(sql)
                return cur.fetchone() if cur.description else None
            except psycopg.OperationalError:
                self.conn = None
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)

    def new_schema(self) -> str:
        name = "bench_" + secrets.token_hex(4)
        self.schemas.add(name)
        return name

    def drop(self, schema: str) -> None:
        for name in (schema, f"{schema}_staging"):  # dlt's merge stages in <dataset>_staging
            self.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        self.schemas.discard(schema)

    def checkpoint(self) -> None:
        """Each measurement starts with clean shared buffers: none pays for the previous."""
        self.execute("CHECKPOINT")

    def count(self, schema: str) -> int:
        row = self.execute(f"SELECT count(*) FROM {schema}.orders")
        return int(row[0]) if row else -1

    def version(self) -> str:
        row = self.execute("SHOW server_version")
        return str(row[0]).split()[0] if row else "?"

    def close(self) -> None:
        for schema in list(self.schemas):
            self.drop(schema)
        if self.conn is not None:
            self.conn.close()


LOST_SERVER = re.compile(
    r"terminating connection|server closed the connection|connection is closed|"
    r"Connection refused|the database system is (starting up|shutting down)|AdminShutdown",
    re.IGNORECASE,
)


def error_line(stderr: str) -> str:
    """The line of a child's stderr that names the error (an exception's, else the last)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    named = [ln for ln in lines if re.match(r"^(error:|[\w.]+(Error|Exception|Failed)\b)", ln)]
    return ((named or lines or ["?"])[-1])[:300]


def with_password(dsn: str) -> str:
    """dlt insists on a password in PostgreSQL credentials; trust auth ignores this one."""
    url = urlsplit(dsn)
    if url.password is not None or "@" not in url.netloc:
        return dsn
    user, _, host = url.netloc.rpartition("@")
    return urlunsplit(url._replace(netloc=f"{user}:unused@{host}"))


def duckdb_count(path: Path, schema: str) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        row = con.execute(f"SELECT count(*) FROM {schema}.orders").fetchone()
        return int(row[0]) if row else -1
    finally:
        con.close()


class Bench:
    def __init__(self, args: argparse.Namespace, data: Data, pg: Postgres | None) -> None:
        self.args = args
        self.data = data
        self.pg = pg
        self.work = DATA / "work-run"
        self.afterload = ROOT / ".venv" / "bin" / "afterload"
        self.dlt_python: Path | None = None
        self.cap_kib = int(args.rss_cap_gb * (1 << 20))
        self.figures: list[Figure] = []
        self.notes: list[str] = []
        self.afterload_postgres = True

    # -- the steps of one tool: each returns the finished process -----------------------

    def afterload_config(
        self, destination: str, case: str, workdir: Path, target: str, step: int
    ) -> Path:
        """The config of one case; step 1 adds the update file to the source glob."""
        config: dict[str, Any] = {"name": "bench"}
        if destination == "duckdb":
            config["destination"] = {"duckdb": {"path": target}}
        else:
            config["destination"] = {"postgres": {"dsn": self.args.dsn, "schema": target}}
        binding: dict[str, Any] = {"source": "in/*.jsonl", "table": "orders"}
        if case == "append":
            binding["delta_updates"] = True
        else:
            binding["key"] = ["/id"]
        config["bindings"] = [binding]
        (workdir / "in").mkdir(parents=True, exist_ok=True)
        path = workdir / "afterload.yaml"
        path.write_text(yaml.safe_dump(config))
        source = self.data.orders if step == 0 else self.data.update_file
        link = workdir / "in" / f"{step:02d}-{source.name}"
        if not link.exists():
            link.symlink_to(source)
        return path

    def afterload_step(
        self, destination: str, case: str, workdir: Path, target: str, step: int
    ) -> Proc:
        path = self.afterload_config(destination, case, workdir, target, step)
        return spawn(
            [str(self.afterload), "run", str(path), "--once"], cwd=workdir, cap_kib=self.cap_kib
        )

    def native_step(self, destination: str, case: str, target: str, step: int) -> Proc:
        kind = "upsert" if step else case
        if destination == "duckdb":
            source = self.data.orders if step == 0 else self.data.update_file
            cmd = [destination, target, kind, str(source)]
        else:
            source = self.data.orders_tsv if step == 0 else self.data.updates_tsv
            cmd = [destination, self.args.dsn, kind, str(source), "--schema", target]
        return spawn([sys.executable, str(HERE / "native_load.py"), *cmd], cap_kib=self.cap_kib)

    def dlt_step(
        self, destination: str, case: str, tool: str, workdir: Path, target: str, step: int
    ) -> Proc:
        assert self.dlt_python is not None
        source = self.data.orders if step == 0 else self.data.update_file
        if destination == "duckdb":
            where = ["--target", str(workdir / target), "--dataset", "bench"]
        else:
            where = ["--target", with_password(self.args.dsn), "--dataset", target]
        cmd = [
            str(self.dlt_python),
            str(HERE / "dlt_load.py"),
            str(source),
            "--destination",
            destination,
            *where,
            "--pipelines-dir",
            str(workdir / "pipelines"),
            "--disposition",
            "append" if case == "append" else "merge",
            "--feed",
            tool.removeprefix("dlt-"),
        ]
        return spawn(cmd, cap_kib=self.cap_kib, timeout=self.args.dlt_timeout)

    # -- one case of one tool: a fresh table, the load(s), the row count -------------------

    def measure(self, destination: str, case: str, tool: str, run: int) -> list[Figure]:
        """``append`` and ``merge`` give one figure; ``merge`` also gives ``upsert``."""
        workdir = self.work / f"{destination}-{tool}-{case}-{run}"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        target = self.new_target(destination, tool, workdir)
        names = [case, "upsert"] if case == "merge" else [case]
        figures = []
        try:
            for step, name in enumerate(names):
                proc = self.load_step(destination, case, tool, workdir, target, step)
                count = self.data.docs if step == 0 else self.data.updates
                fig = Figure(destination, name, tool, run, count, proc.seconds, proc.rss_kib)
                figures.append(fig)
                if not self.check(fig, proc, workdir, target, step):
                    break
                status = f"{fig.seconds:7.2f} s  {count / fig.seconds:>10,.0f} docs/s"
                print(
                    f"  {destination:<8} {name:<6} {tool:<9} run {run + 1}: {status}  "
                    f"{fig.rss_kib / 1024:7.0f} MiB",
                    flush=True,
                )
        finally:
            if destination == "postgres":
                assert self.pg is not None
                self.pg.drop(target)
            shutil.rmtree(workdir, ignore_errors=True)
        for fig in figures:
            if not fig.ok:
                print(f"  {destination:<8} {fig.case:<6} {tool:<9} FAILED: {fig.note}", flush=True)
        return figures

    def new_target(self, destination: str, tool: str, workdir: Path) -> str:
        """A fresh schema (PostgreSQL) or database file (DuckDB) for one measurement."""
        if destination == "postgres":
            assert self.pg is not None
            target = self.pg.new_schema()
            if tool == "native":
                self.pg.execute(f"CREATE SCHEMA {target}")
            return target
        target = "afterload.duckdb" if tool == "afterload" else f"{tool}.duckdb"
        return str(workdir / target) if tool == "native" else target

    def load_step(
        self, destination: str, case: str, tool: str, workdir: Path, target: str, step: int
    ) -> Proc:
        """One timed load by one tool, after a PostgreSQL checkpoint so none inherits another's."""
        if destination == "postgres":
            assert self.pg is not None
            self.pg.checkpoint()
        if tool == "afterload":
            return self.afterload_step(destination, case, workdir, target, step)
        if tool == "native":
            return self.native_step(destination, case, target, step)
        return self.dlt_step(destination, case, tool, workdir, target, step)

    def check(self, fig: Figure, proc: Proc, workdir: Path, target: str, step: int) -> bool:
        """Whether the load exited cleanly and left the rows it should; if not, fig says why."""
        if proc.code != 0 or proc.killed:
            fig.ok = False
            fig.note = proc.killed or f"exit {proc.code}: {error_line(proc.stderr)}"
            log = DATA / "failures" / f"{workdir.name}-{fig.case}.log"
            log.parent.mkdir(exist_ok=True)
            log.write_text(proc.stdout + "\n" + proc.stderr)
            return False
        want = self.data.docs if step == 0 else self.data.upsert_rows
        try:
            got = self.count(fig.destination, fig.tool, workdir, target)
        except (duckdb.Error, psycopg.Error) as exc:
            got, fig.note = -1, f"row count failed: {exc}".splitlines()[0]
        if got != want:
            fig.ok = False
            fig.note = fig.note or f"{got:,} rows, expected {want:,}"
            return False
        return True

    def count(self, destination: str, tool: str, workdir: Path, target: str) -> int:
        if destination == "postgres":
            assert self.pg is not None
            return self.pg.count(target)
        if tool == "afterload":
            return duckdb_count(workdir / target, "main")
        if tool == "native":
            return duckdb_count(Path(target), "main")
        return duckdb_count(workdir / target, "bench")

    # -- afterload's PostgreSQL destination may not be wired yet ---------------------------

    def probe_afterload_postgres(self) -> None:
        assert self.pg is not None
        workdir = self.work / "probe"
        shutil.rmtree(workdir, ignore_errors=True)
        (workdir / "in").mkdir(parents=True)
        (workdir / "in" / "probe.jsonl").write_text('{"id": 1, "amount": 1.5}\n')
        schema = self.pg.new_schema()
        config = {
            "name": "probe",
            "destination": {"postgres": {"dsn": self.args.dsn, "schema": schema}},
            "bindings": [{"source": "in/*.jsonl", "table": "orders", "key": ["/id"]}],
        }
        (workdir / "probe.yaml").write_text(yaml.safe_dump(config))
        try:
            proc = spawn([str(self.afterload), "run", str(workdir / "probe.yaml"), "--once"])
            if proc.code != 0:
                reason = (proc.stderr.strip().splitlines() or ["?"])[-1].strip()
                self.afterload_postgres = False
                self.notes.append(
                    f"afterload's PostgreSQL cases were skipped: `afterload run --once` with a "
                    f"`postgres` destination answered “{reason}”."
                )
                print(f"skipping afterload on PostgreSQL: {reason}", flush=True)
        finally:
            self.pg.drop(schema)
            shutil.rmtree(workdir, ignore_errors=True)

    # -- the whole run -------------------------------------------------------------------

    def plan(self) -> Iterator[tuple[str, str, str, int]]:
        for run in range(self.args.runs):
            for destination in self.args.destinations:
                for tool in self.args.tools:
                    skip_pg = destination == "postgres" and not self.afterload_postgres
                    if tool == "afterload" and skip_pg:
                        continue
                    if tool == "dlt-dicts" and run >= self.args.dlt_dict_runs:
                        continue
                    for case in ("append", "merge"):
                        yield destination, case, tool, run

    def run(self) -> None:
        if "postgres" in self.args.destinations and "afterload" in self.args.tools:
            self.probe_afterload_postgres()
        if any(t.startswith("dlt-") for t in self.args.tools):
            self.dlt_python = ensure_venv(DLT_VENV, DLT_REQUIREMENTS)
        if "postgres" in self.args.destinations and not self.afterload_postgres:
            for case in CASES:
                docs = self.data.updates if case == "upsert" else self.data.docs
                fig = Figure("postgres", case, "afterload", 0, docs, ok=False)
                fig.note = "skipped: the postgres destination is not wired into the runtime yet"
                self.figures.append(fig)
        for destination, case, tool, run in self.plan():
            for attempt in range(3):
                figures = self.measure(destination, case, tool, run)
                lost = [f for f in figures if not f.ok and LOST_SERVER.search(f.note)]
                if not lost or attempt == 2:
                    break
                print("  the PostgreSQL server went away (restarted?): measuring again", flush=True)
                time.sleep(10)
            self.figures.extend(figures)
            # kept as the run goes, so a failure late in a long run loses nothing measured
            (DATA / "figures-in-progress.json").write_text(
                json.dumps([asdict(f) for f in self.figures], indent=1)
            )
