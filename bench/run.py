"""`make bench`: afterload, the native bulk path and dlt, side by side, one run, same data.

    .venv/bin/python bench/run.py [--runs 3] [--dlt-dict-runs 1] [--quick]
        [--only duckdb,postgres,trigger,dlt] [--dsn URI] [--write | --no-write]
    .venv/bin/python bench/run.py --render bench/data/results-full.json   # tables and chart again

Every load runs in its own process, timed from start to exit, its peak RSS taken from
``os.wait4``: afterload as ``afterload run CONFIG --once``; the native path as
bench/native_load.py in this venv; dlt as bench/dlt_load.py in bench/.venv-dlt, a virtual
environment this script creates with a pinned dlt (afterload's venv never gets dlt). The chart is
drawn by bench/chart.py in bench/.venv-tools (matplotlib, py-spy), created the same way.

Cases, per destination: ``append`` (delta updates into an empty table), ``merge`` (standard
updates, keyed, into an empty table) and ``upsert`` (the update file merged into the result of
``merge``; only that second load is timed). A full run (no --quick, no --only) writes its
section of bench/RESULTS.md and bench/results.png; other runs write under bench/data/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import duckdb
import orjson
import psycopg
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_duckdb import DATA, standard_inputs  # noqa: E402

DLT_VERSION = "1.31.0"
DLT_REQUIREMENTS = [f"dlt[duckdb,postgres,parquet]=={DLT_VERSION}"]
TOOLS_REQUIREMENTS = ["matplotlib==3.11.2", "py-spy==0.4.3"]
DLT_VENV = HERE / ".venv-dlt"
TOOLS_VENV = HERE / ".venv-tools"
RESULTS_MD = HERE / "RESULTS.md"
RESULTS_PNG = HERE / "results.png"
SECTION = "## Side by side (make bench)"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"

DESTINATIONS = ("duckdb", "postgres")
CASES = ("append", "merge", "upsert")
TOOLS = ("afterload", "native", "dlt-dicts", "dlt-arrow")
DESTINATION_TITLE = {"duckdb": "DuckDB", "postgres": "PostgreSQL"}
CASE_TITLE = {
    "append": "append / delta, empty table",
    "merge": "merge into empty table",
    "upsert": "upsert into the merged table",
}
TOOL_TITLE = {
    "afterload": "afterload `run --once`",
    "native": "native bulk path (ceiling)",
    "dlt-dicts": "dlt, parsed dicts",
    "dlt-arrow": "dlt, Arrow tables",
}
NATIVE_HOW = {
    "duckdb": {
        "append": "`CREATE TABLE AS SELECT * FROM read_json`",
        "merge": "`read_json` into a table with its primary key",
        "upsert": "`INSERT OR REPLACE … read_json`",
    },
    "postgres": {
        "append": "`COPY` into a typed table",
        "merge": "`COPY` into a typed table with its primary key",
        "upsert": "`COPY` to staging + `INSERT … ON CONFLICT`",
    },
}


# -------------------------------------------------------------------------------------------
# Processes


@dataclass
class Proc:
    seconds: float
    rss_kib: int
    code: int
    stdout: str
    stderr: str
    killed: str = ""


def tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and its descendants, from /proc."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            for task in (entry.name for entry in Path(f"/proc/{p}/task").iterdir()):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def spawn(
    cmd: Sequence[str], *, cwd: Path | None = None, cap_kib: int = 0, timeout: float = 0
) -> Proc:
    """Run ``cmd``; wall seconds and peak RSS (KiB) of the child via ``os.wait4``.

    A watchdog ends the child if its RSS passes ``cap_kib`` or it runs past ``timeout``, so a
    runaway competitor cannot take the shared machine down.
    """
    env = dict(os.environ, RUNTIME__DLTHUB_TELEMETRY="false", PYTHONUNBUFFERED="1")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, stdout=out, stderr=err, env=env)
        done = threading.Event()
        killed: list[str] = []

        def watch() -> None:
            while not done.wait(0.25):
                rss = tree_rss_kib(proc.pid) if cap_kib else 0
                if cap_kib and rss > cap_kib:
                    killed.append(f"killed at {rss / (1 << 20):.1f} GiB RSS")
                elif timeout and time.perf_counter() - start > timeout:
                    killed.append(f"killed after {timeout:.0f} s")
                else:
                    continue
                proc.kill()
                return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        done.set()
        watcher.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Proc(
            seconds,
            usage.ru_maxrss,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            killed[0] if killed else "",
        )


def ensure_venv(venv: Path, requirements: list[str]) -> Path:
    """A virtual environment with exactly these pinned requirements; its python."""
    python = venv / "bin" / "python"
    stamp = venv / ".bench-requirements"
    want = "\n".join(requirements)
    if python.exists() and stamp.exists() and stamp.read_text() == want:
        return python
    print(f"setting up {venv.relative_to(ROOT)}: {' '.join(requirements)}", flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *requirements], check=True)
    stamp.write_text(want)
    return python


def package_versions(python: Path, names: list[str]) -> dict[str, str]:
    code = (
        "import json, sys\nfrom importlib.metadata import version, PackageNotFoundError\n"
        "out = {}\nfor n in sys.argv[1:]:\n"
        "    try: out[n] = version(n)\n    except PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    res = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True)
    return json.loads(res.stdout) if res.returncode == 0 else {}


# -------------------------------------------------------------------------------------------
# Data


@dataclass
class Data:
    docs: int
    updates: int
    orders: Path
    update_file: Path
    orders_tsv: Path
    updates_tsv: Path
    upsert_rows: int  # rows after the upsert: the union of both files' keys

    @property
    def mib(self) -> float:
        return self.orders.stat().st_size / (1 << 20)


def esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def copy_text(source: Path) -> Path:
    """The documents as COPY text rows for the native PostgreSQL path, made once and cached."""
    target = source.with_suffix(".copy.tsv")
    if target.exists():
        return target
    tmp = target.with_suffix(".part")
    dumps = orjson.dumps
    with open(source, "rb") as f, open(tmp, "w") as out:
        rows: list[str] = []
        for raw in f:
            d = orjson.loads(raw)
            rows.append(
                f"{d['id']}\t{esc(d['customer'])}\t{d['amount']!r}\t{d['created_at']}\t"
                f"{esc(dumps(d['shipping']).decode())}\t{esc(dumps(d['tags']).decode())}\t"
                f"{esc(d['status'])}\n"
            )
            if len(rows) == 10_000:
                out.write("".join(rows))
                rows.clear()
        out.write("".join(rows))
    tmp.rename(target)
    return target


def prepare_data(docs: int, updates: int) -> Data:
    orders, update_file = standard_inputs(docs, updates)
    with open(update_file, "rb") as f:
        new_keys = {orjson.loads(line)["id"] for line in f}
    upsert_rows = docs + sum(1 for k in new_keys if k >= docs)
    return Data(
        docs,
        updates,
        orders,
        update_file,
        copy_text(orders),
        copy_text(update_file),
        upsert_rows,
    )


# -------------------------------------------------------------------------------------------
# One measurement


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

    def measure(self, destination: str, case: str, tool: str, run: int) -> list[Figure]:  # noqa: C901  (one dispatch over tools; bench/run.py is still to split)
        """``append`` and ``merge`` give one figure; ``merge`` also gives ``upsert``."""
        workdir = self.work / f"{destination}-{tool}-{case}-{run}"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        if destination == "postgres":
            assert self.pg is not None
            target = self.pg.new_schema()
            if tool == "native":
                self.pg.execute(f"CREATE SCHEMA {target}")
        else:
            target = "afterload.duckdb" if tool == "afterload" else f"{tool}.duckdb"
            if tool == "native":
                target = str(workdir / target)
        names = [case, "upsert"] if case == "merge" else [case]
        figures = []
        try:
            for step, name in enumerate(names):
                if destination == "postgres":
                    assert self.pg is not None
                    self.pg.checkpoint()
                if tool == "afterload":
                    proc = self.afterload_step(destination, case, workdir, target, step)
                elif tool == "native":
                    proc = self.native_step(destination, case, target, step)
                else:
                    proc = self.dlt_step(destination, case, tool, workdir, target, step)
                count = self.data.docs if step == 0 else self.data.updates
                fig = Figure(destination, name, tool, run, count, proc.seconds, proc.rss_kib)
                figures.append(fig)
                if proc.code != 0 or proc.killed:
                    fig.ok = False
                    fig.note = proc.killed or f"exit {proc.code}: {error_line(proc.stderr)}"
                    log = DATA / "failures" / f"{workdir.name}-{name}.log"
                    log.parent.mkdir(exist_ok=True)
                    log.write_text(proc.stdout + "\n" + proc.stderr)
                    break
                want = self.data.docs if step == 0 else self.data.upsert_rows
                try:
                    got = self.count(destination, tool, workdir, target)
                except (duckdb.Error, psycopg.Error) as exc:
                    got, fig.note = -1, f"row count failed: {exc}".splitlines()[0]
                if got != want:
                    fig.ok = False
                    fig.note = fig.note or f"{got:,} rows, expected {want:,}"
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


# -------------------------------------------------------------------------------------------
# Summaries


@dataclass
class Row:
    destination: str
    case: str
    tool: str
    docs: int
    runs: int
    failed: int
    median: float = 0.0
    low: float = 0.0
    high: float = 0.0
    rss_kib: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.docs / self.median if self.median else 0.0


def summarize(figures: list[Figure]) -> dict[tuple[str, str, str], Row]:
    rows: dict[tuple[str, str, str], Row] = {}
    for dest in DESTINATIONS:
        for case in CASES:
            for tool in TOOLS:
                figs = [f for f in figures if (f.destination, f.case, f.tool) == (dest, case, tool)]
                if not figs:
                    continue
                good = [f for f in figs if f.ok]
                bad = [f for f in figs if not f.ok and not f.note.startswith("skipped")]
                row = Row(dest, case, tool, figs[0].docs, len(good), len(bad))
                row.notes = sorted({f.note for f in figs if f.note})
                if good:
                    secs = [f.seconds for f in good]
                    row.median = statistics.median(secs)
                    row.low, row.high = min(secs), max(secs)
                    row.rss_kib = statistics.median(f.rss_kib for f in good)
                rows[dest, case, tool] = row
    return rows


def human_rate(rate: float) -> str:
    if rate >= 1e6:
        return f"{rate / 1e6:.2f} M"
    if rate >= 1e3:
        return f"{rate / 1e3:.0f} k"
    return f"{rate:.0f}"


def human_rss(kib: float) -> str:
    return f"{kib / (1 << 20):.1f} GiB" if kib >= 1 << 20 else f"{kib / 1024:.0f} MiB"


def tables(rows: dict[tuple[str, str, str], Row]) -> list[str]:
    lines: list[str] = []
    for dest in DESTINATIONS:
        if not any(k[0] == dest for k in rows):
            continue
        lines += [
            f"**{DESTINATION_TITLE[dest]}**",
            "",
            "| case | tool | runs | wall s, median (min–max) | docs/s | peak RSS | vs native |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for case in CASES:
            native = rows.get((dest, case, "native"))
            for tool in TOOLS:
                row = rows.get((dest, case, tool))
                if row is None:
                    continue
                name = TOOL_TITLE[tool]
                if tool == "native":
                    name = NATIVE_HOW[dest][case]
                runs = str(row.runs) + (f" (+{row.failed} failed)" if row.failed else "")
                if not row.runs and not row.failed:
                    runs = "skipped"
                if not row.runs:
                    lines.append(
                        f"| {CASE_TITLE[case]} | {name} | {runs} | — | — | — | "
                        f"{'; '.join(row.notes)} |"
                    )
                    continue
                vs = "—"
                if native and native.runs and tool != "native":
                    vs = f"{native.median / row.median:.0%}"
                lines.append(
                    f"| {CASE_TITLE[case]} | {name} | {runs} | {row.median:.2f} "
                    f"({row.low:.2f}–{row.high:.2f}) | {human_rate(row.rate)} | "
                    f"{human_rss(row.rss_kib)} | {vs} |"
                )
        lines.append("")
    return lines


@dataclass
class Bar:
    name: str
    destination: str
    case: str
    figure: str
    met: bool | None  # None: not measured
    margin: str = ""


def bars(rows: dict[tuple[str, str, str], Row]) -> list[Bar]:
    out: list[Bar] = []

    def get(dest: str, case: str, tool: str) -> Row | None:
        row = rows.get((dest, case, tool))
        return row if row is not None and row.runs else None

    for dest in DESTINATIONS:
        if not any(k[0] == dest for k in rows):
            continue
        for case in ("append", "merge"):
            ours, native = get(dest, case, "afterload"), get(dest, case, "native")
            if ours and native:
                share = native.median / ours.median
                margin = (
                    "" if share >= 0.5 else f"needs {ours.median / native.median / 2:.1f}× faster"
                )
                out.append(Bar("≥ 50% of native", dest, case, f"{share:.0%}", share >= 0.5, margin))
            else:
                out.append(Bar("≥ 50% of native", dest, case, "not measured", None))
        ours, native = get(dest, "upsert", "afterload"), get(dest, "upsert", "native")
        if ours and native:
            ratio = ours.median / native.median
            margin = "" if ratio <= 2 else f"{ratio / 2:.1f}× over the bar"
            out.append(Bar("within 2× native", dest, "upsert", f"{ratio:.2f}×", ratio <= 2, margin))
        else:
            out.append(Bar("within 2× native", dest, "upsert", "not measured", None))
        for case in CASES:
            ours, dicts = get(dest, case, "afterload"), get(dest, case, "dlt-dicts")
            if ours and dicts:
                speed = dicts.median / ours.median
                margin = "" if speed > 1 else f"{1 / speed:.1f}× slower"
                out.append(
                    Bar(
                        "faster than dlt dicts",
                        dest,
                        case,
                        f"{speed:.1f}× faster",
                        speed > 1,
                        margin,
                    )
                )
            else:
                out.append(Bar("faster than dlt dicts", dest, case, "not measured", None))
    return out


def bar_lines(found: list[Bar]) -> list[str]:
    lines = [
        "| bar | destination | case | afterload | result |",
        "| --- | --- | --- | ---: | --- |",
    ]
    for b in found:
        result = "n/a" if b.met is None else ("met" if b.met else f"**missed** ({b.margin})")
        lines.append(
            f"| {b.name} | {DESTINATION_TITLE[b.destination]} | {b.case} | {b.figure} | {result} |"
        )
    return lines


# -------------------------------------------------------------------------------------------
# Profiles of the afterload cases that miss a bar


def profile_afterload(bench: Bench, destination: str, case: str) -> list[str]:
    """One ``run --once`` under py-spy: where afterload's own time goes, by leaf function."""
    tools = ensure_venv(TOOLS_VENV, TOOLS_REQUIREMENTS)
    pyspy = tools.parent / "py-spy"
    workdir = bench.work / f"profile-{destination}-{case}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    target = "afterload.duckdb"
    if destination == "postgres":
        assert bench.pg is not None
        target = bench.pg.new_schema()
    raw = workdir / "profile.txt"
    try:
        first = "merge" if case == "upsert" else case
        if case == "upsert":  # the table to upsert into, not profiled
            bench.afterload_step(destination, first, workdir, target, 0)
        step = 1 if case == "upsert" else 0
        config = bench.afterload_config(destination, first, workdir, target, step)
        proc = spawn(
            [
                str(pyspy),
                "record",
                "--format",
                "raw",
                "--rate",
                "200",
                "--nonblocking",
                "-o",
                str(raw),
                "--",
                str(bench.afterload),
                "run",
                str(config),
                "--once",
            ],
            cwd=workdir,
        )
        if proc.code != 0 or not raw.exists():
            return [f"(py-spy failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]})"]
        return summarize_profile(raw.read_text())
    finally:
        if destination == "postgres":
            assert bench.pg is not None
            bench.pg.drop(target)
        shutil.rmtree(workdir, ignore_errors=True)


READING = re.compile(r"afterload/(documents|schema|sources|transaction)\.py")
WRAPPERS = ("main ", "run ", "<module>", "_run ", "run_materialization ", "_main ", "__call__ ")


def summarize_profile(text: str, top: int = 8) -> list[str]:
    """Own time by leaf function, then total time of afterload's own functions."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = outside = dest = lines_cost = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        own[frames[-1]] += n
        for name in set(frames):
            if "afterload/" in name and not name.startswith(WRAPPERS):
                inclusive[name] += n
        if any("afterload/destinations/" in f for f in frames):
            dest += n  # on whichever thread the commit runs
        elif any(READING.search(f) for f in frames):
            lines_cost += n
        elif not any(f.startswith("run_materialization ") for f in frames):
            outside += n
        total += n
    if not total:
        return ["(no samples)"]
    lines = [
        f"Split: {dest / total:.0%} in the destination (row encoding, SQL, waiting for the "
        f"database), {lines_cost / total:.0%} reading, parsing and checking lines, "
        f"{outside / total:.0%} start-up and shut-down (interpreter, imports, config), "
        f"{(total - dest - lines_cost - outside) / total:.0%} elsewhere.",
        "",
        f"{total} samples at 200 Hz of every busy thread (the commit may run on its own "
        "thread, overlapping the reading). Own time by function (time inside "
        "DuckDB, psycopg or orjson counts for the Python function that called it):",
        "",
    ]
    lines += [f"- {n / total:5.1%}  `{name}`" for name, n in own.most_common(top)]
    lines += [
        "",
        "Total time (with callees) of afterload's functions:",
        "",
    ]
    lines += [f"- {n / total:5.1%}  `{name}`" for name, n in inclusive.most_common(top)]
    return lines


# -------------------------------------------------------------------------------------------
# Trigger overhead: bench_trigger.py as it is, in a child process


def run_trigger() -> dict[str, Any]:
    print("trigger overhead: bench/bench_trigger.py", flush=True)
    proc = spawn([sys.executable, str(HERE / "bench_trigger.py")], cwd=ROOT)
    output = proc.stdout.rstrip()
    print(output, flush=True)
    verdict = next((ln for ln in output.splitlines() if ln.startswith("bar:")), "")
    return {
        "ok": proc.code == 0,
        "seconds": proc.seconds,
        "output": output if proc.code == 0 else proc.stderr[-2000:],
        "verdict": verdict,
    }


# -------------------------------------------------------------------------------------------
# Machine and output


def machine(pg: Postgres | None) -> dict[str, Any]:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version

    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(mem, 1),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "psycopg": f"{psycopg.__version__} ({psycopg.pq.__impl__})",
        "afterload": version("afterload"),
        "load_before": os.getloadavg(),
    }
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    info["commit"] = commit + (" with uncommitted changes in src/" if dirty else "")
    if pg is not None:
        info["postgres"] = pg.version()
    if DLT_VENV.exists():
        info["dlt_venv"] = package_versions(
            DLT_VENV / "bin" / "python", ["dlt", "duckdb", "pyarrow", "psycopg2-binary"]
        )
    return info


def reading(  # noqa: C901  (a report section; bench/run.py is still to split)
    rows: dict[tuple[str, str, str], Row],
    found: list[Bar],
    data: Data,
    profiles: dict[str, list[str]],
) -> str:
    """The paragraph under the tables, from the figures themselves."""
    parts: list[str] = []

    def get(dest: str, case: str, tool: str) -> Row | None:
        row = rows.get((dest, case, tool))
        return row if row is not None and row.runs else None

    for dest in DESTINATIONS:
        title = DESTINATION_TITLE[dest]
        native, ours = get(dest, "append", "native"), get(dest, "append", "afterload")
        merge_n, merge_o = get(dest, "merge", "native"), get(dest, "merge", "afterload")
        up_n, up_o = get(dest, "upsert", "native"), get(dest, "upsert", "afterload")
        if not (native and ours):
            if native and not ours:
                parts.append(f"On {title} only the other tools were measured.")
            continue
        text = (
            f"On {title}, afterload lands the {data.docs:,} documents into an empty table at "
            f"{human_rate(ours.rate)}docs/s, {native.median / ours.median:.0%} of the native "
            f"path's {human_rate(native.rate)}docs/s"
        )
        if merge_n and merge_o:
            text += f" ({merge_n.median / merge_o.median:.0%} with a primary key)"
        if up_n and up_o:
            text += (
                f"; the upsert of {data.updates:,} takes {up_o.median / up_n.median:.2f}× native"
            )
        parts.append(text + ".")
        dicts, arrow = get(dest, "append", "dlt-dicts"), get(dest, "append", "dlt-arrow")
        bits = []
        if dicts:
            bits.append(
                f"dlt's dict path takes {dicts.median / ours.median:.1f}× afterload's time and "
                f"peaks at {human_rss(dicts.rss_kib)} RSS (afterload: {human_rss(ours.rss_kib)})"
            )
        if arrow:
            ratio = arrow.median / ours.median
            bits.append(
                f"its Arrow path {ratio:.1f}× ({'slower' if ratio > 1 else 'faster'} than "
                f"afterload) at {human_rss(arrow.rss_kib)}"
            )
        if bits:
            parts.append(f"On the same append into {title}, " + "; ".join(bits) + ".")
    missed = [b for b in found if b.met is False]
    if missed:
        parts.append(
            "Missed: "
            + "; ".join(
                f"{b.name} on {DESTINATION_TITLE[b.destination]} {b.case} ({b.figure}, {b.margin})"
                for b in missed
            )
            + "."
        )
        splits = []
        for key, prof in profiles.items():
            split = next((ln for ln in prof if ln.startswith("Split: ")), "")
            shares = re.findall(r"(\d+)%", split)
            if len(shares) >= 3:
                splits.append(f"{key} {shares[0]} / {shares[1]} / {shares[2]}")
        if splits:
            parts.append(
                "Where the time goes (py-spy, % of samples in the destination / reading, "
                "parsing and checking lines / start-up): " + "; ".join(splits) + "."
            )
    elif any(b.met for b in found):
        parts.append("Every measured bar is met.")
    parts.append(
        "All figures are whole processes, start to exit: interpreter start, imports and the "
        "destination's final commit count for every tool. afterload also stores each document "
        "whole (`flow_document`) and checks every line's shape, which the native path does not; "
        "dlt flattens the nested object into columns and, on the dict path, moves the tags list "
        "into a child table `orders__tags`."
    )
    return " ".join(parts)


def render(result: dict[str, Any]) -> str:
    data = Data(**{k: Path(v) if isinstance(v, str) else v for k, v in result["data"].items()})
    figures = [Figure(**f) for f in result["figures"]]
    rows = summarize(figures)
    found = bars(rows)
    m = result["machine"]
    dv = m.get("dlt_venv", {})
    dict_runs = ""
    if result["dlt_dict_runs"] < result["runs"]:
        dict_runs = (
            f", except dlt's dict path: {result['dlt_dict_runs']} run, because one of its runs "
            "takes longer than all the other tools' runs together and a full run has to fit "
            "well under an hour"
        )
    lines = [
        SECTION,
        "",
        f"Taken {result['finished']} with `{result['command']}` from the repository root "
        "(`make bench` runs it with no options; `--quick` and "
        "`--only duckdb|postgres|trigger|dlt` are for smoke runs). "
        f"Total time {result['total_seconds'] / 60:.1f} min.",
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu']}), {m['memory_gib']} GiB RAM; Python "
        f"{m['python']}, DuckDB {m['duckdb']}, PostgreSQL {m.get('postgres', 'not used')} "
        f"(local, 127.0.0.1), psycopg {m['psycopg']}; afterload {m['afterload']} at "
        f"{m['commit']}; dlt {dv.get('dlt', 'not used')} (`dlt[duckdb,postgres,parquet]` "
        f"pinned, in `bench/.venv-dlt` with DuckDB {dv.get('duckdb', '?')}, pyarrow "
        f"{dv.get('pyarrow', '?')}, psycopg2 {dv.get('psycopg2-binary', '?')}). "
        "A shared machine: other engineers' sessions work on it and may have run tests during "
        f"the run (load average {m['load_before'][0]:.1f} before, {m['load_after'][0]:.1f} "
        "after), so spreads can be wider than on an idle one.",
        "",
        f"Data: {data.docs:,} order-like documents ({result['data_mib']:.0f} MiB, about "
        f"{result['data_mib'] * (1 << 20) / data.docs:.0f} bytes each, from bench_duckdb.py's "
        f"seeded generator) and {data.updates:,} updates whose keys overlap (after the upsert "
        f"the table has {data.upsert_rows:,} rows; every load's row count is checked). Each "
        f"figure is the median of {result['runs']} run(s) with the min–max spread{dict_runs}. "
        "Wall time is the whole process, start to exit; peak "
        "RSS is the process's (`os.wait4`), the PostgreSQL server's memory not included.",
        "",
        "How each tool is fed: afterload, `afterload run CONFIG --once` with defaults (delta "
        "updates for append, key `/id` otherwise; the upsert is a second `--once` after the "
        "update file appears in the source glob). Native: bench/native_load.py — DuckDB reads "
        "the NDJSON itself; PostgreSQL has no NDJSON reader, so its ceiling is `COPY` of rows "
        "converted beforehand (not timed) into a table typed like the documents, and the upsert "
        "de-duplicates in SQL (`DISTINCT ON`, last line wins). dlt: bench/dlt_load.py — "
        "*parsed dicts* is a resource yielding `json.loads` of each line, as dlt's docs show, "
        'with `write_disposition` `append` or `merge` + `primary_key="id"` and the '
        "destination's default loader; *Arrow tables* is dlt's faster path, the resource "
        "yielding tables from pyarrow's NDJSON reader, loaded as parquet (DuckDB) or csv "
        "(PostgreSQL, which needs the nested columns flattened and the list as JSON text). "
        "Each PostgreSQL case gets a fresh schema, dropped after, and a "
        "`CHECKPOINT` before each timed load.",
        "",
        *tables(rows),
        "Bars (from the runtime and PostgreSQL issues):",
        "",
        *bar_lines(found),
        "",
    ]
    for note in result.get("notes", []):
        lines += [note, ""]
    for key, prof in result.get("profiles", {}).items():
        lines += [f"Profile of afterload, {key} (py-spy, one run):", "", *prof, ""]
    trig = result.get("trigger")
    if trig:
        lines += [
            "### Trigger overhead (bench/bench_trigger.py, unchanged)",
            "",
            "```",
            trig["output"],
            "```",
            "",
        ]
    lines += [
        "### Reading",
        "",
        reading(rows, found, data, result.get("profiles", {})),
        "",
        "![documents per second](results.png)",
        "",
    ]
    return "\n".join(lines)


def write_section(md: str, path: Path) -> None:
    """Put this section in place of its previous version; every other section is kept."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() == SECTION), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + md.rstrip("\n") + "\n"
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        kept_after = "\n".join(lines[end:])
        new = "\n".join(lines[:start]) + "\n" + md.rstrip("\n") + "\n"
        if kept_after:
            new += "\n" + kept_after + "\n"
    path.write_text(new)


def draw(result_json: Path, png: Path) -> None:
    tools = ensure_venv(TOOLS_VENV, TOOLS_REQUIREMENTS)
    subprocess.run([str(tools), str(HERE / "chart.py"), str(result_json), str(png)], check=True)


def emit(result: dict[str, Any], json_path: Path, md_path: Path, png_path: Path) -> None:
    md = render(result)
    print("\n" + md)
    draw(json_path, png_path)
    if md_path == RESULTS_MD:
        write_section(md, md_path)
    else:
        md_path.write_text(md + "\n")
    print(f"wrote {md_path.relative_to(ROOT)}, {png_path.relative_to(ROOT)}", flush=True)


# -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    parser.add_argument(
        "--dlt-dict-runs", type=int, default=1, help="runs of dlt's slow dict path (default 1)"
    )
    parser.add_argument("--quick", action="store_true", help="100k docs and 20k updates")
    parser.add_argument("--docs", type=int, help="documents (default 1M, 100k with --quick)")
    parser.add_argument("--updates", type=int, help="updates (default 200k, 20k with --quick)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="duckdb, postgres (that destination's cases), dlt (dlt and the native path "
        "only), trigger; comma-separated or repeated",
    )
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--rss-cap-gb", type=float, default=16.0, help="kill a child above this")
    parser.add_argument("--dlt-timeout", type=float, default=900.0, help="seconds per dlt load")
    parser.add_argument("--no-profile", action="store_true", help="no py-spy on missed bars")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--render", type=Path, help="re-render a results JSON and exit")
    args = parser.parse_args(argv)
    only = {x.strip() for item in args.only for x in item.split(",") if x.strip()}
    unknown = only - {"duckdb", "postgres", "trigger", "dlt"}
    if unknown:
        parser.error(f"--only: unknown {', '.join(sorted(unknown))}")
    args.only_set = only
    args.destinations = [d for d in DESTINATIONS if d in only] or (
        list(DESTINATIONS) if not only or "dlt" in only else []
    )
    # dlt alone still gets the native path: the ceiling its figures are read against
    args.tools = ["native", "dlt-dicts", "dlt-arrow"] if "dlt" in only else list(TOOLS)
    args.trigger = not only or "trigger" in only
    args.docs = args.docs or (100_000 if args.quick else 1_000_000)
    args.updates = args.updates or (20_000 if args.quick else 200_000)
    full = not args.quick and not only and args.docs == 1_000_000
    args.write = full if args.write is None else args.write
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        result = json.loads(args.render.read_text())
        emit(
            result,
            args.render,
            RESULTS_MD if args.write else args.render.with_suffix(".md"),
            RESULTS_PNG if args.write else args.render.with_suffix(".png"),
        )
        return 0
    command = "make bench" if not sys.argv[1:] else "bench/run.py " + " ".join(sys.argv[1:])
    started = time.perf_counter()
    print(f"data: {args.docs:,} documents, {args.updates:,} updates (cached in bench/data/)")
    data = prepare_data(args.docs, args.updates)
    pg = Postgres(args.dsn) if "postgres" in args.destinations else None
    bench = Bench(args, data, pg)
    result: dict[str, Any] = {}
    try:
        info = machine(pg)
        if args.destinations:
            bench.run()
        rows = summarize(bench.figures)
        found = bars(rows)
        profiles: dict[str, list[str]] = {}
        if not args.no_profile:
            for b in found:
                key = f"{DESTINATION_TITLE[b.destination]} {b.case}"
                if b.met is False and key not in profiles:
                    print(f"profiling afterload on {key} (missed: {b.name})", flush=True)
                    profiles[key] = profile_afterload(bench, b.destination, b.case)
        trigger = run_trigger() if args.trigger else None
        with contextlib.suppress(psycopg.Error):  # the server went away: keep the first
            info = machine(pg) | {"load_before": info["load_before"]}
        info["load_after"] = os.getloadavg()
    finally:
        if pg is not None:
            pg.close()
        shutil.rmtree(bench.work, ignore_errors=True)
    result = {
        "command": command,
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "total_seconds": time.perf_counter() - started,
        "runs": args.runs,
        "dlt_dict_runs": min(args.dlt_dict_runs, args.runs),
        "data": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(data).items()},
        "data_mib": data.mib,
        "machine": info,
        "figures": [asdict(f) for f in bench.figures],
        "notes": bench.notes,
        "profiles": profiles,
        "trigger": trigger,
    }
    tag = "full" if args.write else ("quick" if args.quick else "partial")
    json_path = DATA / f"results-{tag}.json"
    json_path.write_text(json.dumps(result, indent=1))
    md_path = RESULTS_MD if args.write else DATA / f"results-{tag}.md"
    png_path = RESULTS_PNG if args.write else DATA / f"results-{tag}.png"
    emit(result, json_path, md_path, png_path)
    print("\nbars:")
    for b in found:
        verdict = "n/a" if b.met is None else ("met" if b.met else f"MISSED, {b.margin}")
        print(f"  {b.name:<22} {b.destination:<8} {b.case:<6} {b.figure:>14}  {verdict}")
    if trigger:
        print(f"  trigger: {trigger['verdict'] or 'no verdict (bench_trigger.py failed)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
