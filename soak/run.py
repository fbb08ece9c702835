"""The soak: real ``afterload run`` processes under kills, throttling, faults and bad input.

It feeds a seeded stream of inserts, updates, deletes and the odd malformed line into NDJSON
files, runs one ``afterload run`` process per destination against a dbt Cloud emulator that
misbehaves on purpose, kills and restarts those processes at seeded random moments, restarts
PostgreSQL once, and then checks, independently of afterload's code, that every table holds
exactly what the input says, that the dbt runs stayed within the schedule's bound, that the
last data has a run created after it, and that no secret reached any output.

    python soak/run.py --seconds 600 [--seed N] [--destinations duckdb,postgres]

Exit code 0 only when every check holds. The seed is printed so a failure can be replayed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from afterload.triggers.dbt_cloud.emulator import (
    DbtCloudEmulator,
    EmulatorServer,
    EmulatorSettings,
    Fault,
)

INTERVAL = 5.0
BINDINGS = {
    # name: (key pointers, delta, hard delete)
    "orders": (["/id"], False, False),
    "customers": (["/region", "/id"], False, True),
    "events": ([], True, False),
}
PG_DSN = "postgresql://postgres:{password}@127.0.0.1:5432/test"
console = Console(width=None if sys.stdout.isatty() else 120)


# -- the input stream ------------------------------------------------------------------------


class Generator:
    """Appends seeded documents to the bindings' files, now and then starting a new file."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.live: dict[str, list[Any]] = {name: [] for name in BINDINGS}
        self.file_no = dict.fromkeys(BINDINGS, 0)
        self.counter = itertools.count(1)
        self.documents = 0
        self.malformed = 0
        for name in BINDINGS:
            (root / name).mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        return self.root / name / f"part-{self.file_no[name]:04d}.jsonl"

    def _document(self, name: str) -> bytes:
        rng = self.rng
        n = next(self.counter)
        if rng.random() < 0.004:
            self.malformed += 1
            return rng.choice([b'{"id": 1, "broken', b"not json at all", b"[1, 2, 3]", b'{"x": 1}'])
        if name == "events":
            doc: dict[str, Any] = {
                "seq": n,
                "kind": rng.choice(["view", "click", "buy"]),
                "at": datetime.now().astimezone().isoformat(),
            }
        else:
            live = self.live[name]
            roll = rng.random()
            if live and roll < 0.15:
                key = live.pop(rng.randrange(len(live)))
                doc = {"_meta": {"op": "d"}, **self._key_fields(name, key)}
            elif live and roll < 0.5:
                key = rng.choice(live)
                doc = {**self._key_fields(name, key), **self._values(name, n)}
            else:
                key = (rng.choice(["eu", "us", "apac"]), n) if name == "customers" else n
                live.append(key)
                doc = {**self._key_fields(name, key), **self._values(name, n)}
        self.documents += 1
        return json.dumps(doc).encode()

    @staticmethod
    def _key_fields(name: str, key: Any) -> dict[str, Any]:
        if name == "customers":
            return {"region": key[0], "id": key[1]}
        return {"id": key}

    def _values(self, name: str, n: int) -> dict[str, Any]:
        rng = self.rng
        if name == "orders":
            return {
                "amount": round(rng.uniform(1, 500), 2),
                "customer": f"c{rng.randrange(1000)}",
                "tags": rng.sample(["new", "gift", "rush", "bulk"], k=rng.randrange(3)),
                "shipping": {"city": rng.choice(["Lyon", "Oslo", "Quito"]), "n": n},
            }
        return {"name": f"customer {n}", "vip": rng.random() < 0.1, "visits": rng.randrange(99)}

    def step(self) -> None:
        """One burst: a few lines per binding, sometimes ending mid-line to be finished later."""
        for name in BINDINGS:
            if self.rng.random() < 0.02:
                self.file_no[name] += 1
            lines = [self._document(name) for _ in range(self.rng.randrange(1, 40))]
            data = b"\n".join(lines) + b"\n"
            with open(self._path(name), "ab") as f:
                if self.rng.random() < 0.1:
                    cut = self.rng.randrange(1, len(data))
                    f.write(data[:cut])  # a partial line the reader must wait for
                    f.flush()
                    time.sleep(0.005)
                    f.write(data[cut:])
                else:
                    f.write(data)


def expected_state(root: Path) -> tuple[dict[str, list[str]], dict[str, set[tuple[str, int]]]]:
    """From the input alone: each table's documents (canonical JSON) and the lines to reject."""
    tables: dict[str, list[str]] = {}
    rejects: dict[str, set[tuple[str, int]]] = {}
    for name, (key, delta, hard) in BINDINGS.items():
        rows: dict[Any, dict[str, Any]] = {}
        appended: list[str] = []
        bad: set[tuple[str, int]] = set()
        for path in sorted((root / name).glob("*.jsonl")):
            for lineno, raw in enumerate(path.read_bytes().splitlines(), start=1):
                try:
                    doc = json.loads(raw)
                except ValueError:
                    doc = None
                keyfields = [p.lstrip("/") for p in key]
                if not isinstance(doc, dict) or any(doc.get(k) is None for k in keyfields):
                    bad.add((path.name, lineno))
                    continue
                if delta:
                    appended.append(canonical(doc))
                    continue
                k = tuple(doc[f] for f in keyfields)
                deleted = doc.get("_meta", {}).get("op") == "d"
                if deleted and hard:
                    rows.pop(k, None)
                else:
                    rows[k] = doc
        tables[name] = sorted(appended if delta else (canonical(d) for d in rows.values()))
        rejects[name] = bad
    return tables, rejects


def canonical(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


# -- the processes under test ----------------------------------------------------------------


@dataclass
class Target:
    name: str
    config: Path
    job: int
    proc: subprocess.Popen[bytes] | None = None
    starts: list[float] = field(default_factory=list)
    stops: list[float] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    kills: int = 0
    terms: int = 0

    def start(self, env: dict[str, str]) -> None:
        path = self.config.parent / f"{self.name}-{len(self.starts) + 1:03d}.log"
        self.logs.append(path)
        log = open(path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "afterload", "run", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.config.parent,
        )
        log.close()
        self.starts.append(time.time())

    def stop(self, sig: int, timeout: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.stops.append(time.time())
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code


def _reported_runs(log: Path, job: int) -> set[int]:
    """Run ids a process logged as its fires' outcomes (started, replaced with, adopted)."""
    ids: set[int] = set()
    for line in log.read_text(errors="replace").splitlines():
        if f"dbt job {job}:" in line or "adopted run" in line:
            ids.update(int(x) for x in re.findall(r"\b(\d{10,})\b", line))
    return ids


def write_config(
    path: Path,
    name: str,
    destination: dict[str, Any],
    job: int,
    emulator_url: str,
    api_key: str,
    mode: str,
) -> None:
    bindings = []
    for table, (key, delta, hard) in BINDINGS.items():
        b: dict[str, Any] = {
            "source": f"data/{table}/*.jsonl",
            "table": table,
            "rejects": f"rejects-{name}/{table}.jsonl",
        }
        if key:
            b["key"] = key
        if delta:
            b["delta_updates"] = True
        if hard:
            b["hard_delete"] = True
        bindings.append(b)
    config = {
        "name": name,
        "destination": destination,
        "syncSchedule": {"syncFrequency": "0s"},
        "transaction": {"max_documents": 400},
        "bindings": bindings,
        "dbt_job_trigger": {
            "access_url": emulator_url,
            "account_id": 1,
            "job_id": job,
            "api_key": "${SOAK_DBT_KEY}",
            "mode": mode,
            "interval": f"{INTERVAL:g}s",
            "cause": f"soak {name}",
        },
    }
    path.write_text(json.dumps(config, indent=2))


# -- reading the results ---------------------------------------------------------------------


def read_duckdb(path: Path) -> tuple[dict[str, list[str]], float | None, int]:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = {
            t: sorted(
                canonical(json.loads(r[0]))
                for r in con.execute(f'SELECT flow_document FROM "{t}"').fetchall()
            )
            for t in BINDINGS
        }
        row = con.execute(
            "SELECT epoch(committed_at), transactions FROM _afterload_checkpoints"
        ).fetchone()
    finally:
        con.close()
    return tables, (row[0] if row else None), (row[1] if row else 0)


def read_postgres(dsn: str, schema: str) -> tuple[dict[str, list[str]], float | None, int]:
    import psycopg

    with psycopg.connect(dsn) as con:
        tables = {}
        for t in BINDINGS:
            rows = con.execute(f'SELECT flow_document::text FROM "{schema}"."{t}"').fetchall()
            tables[t] = sorted(canonical(json.loads(r[0])) for r in rows)
        row = con.execute(
            f"SELECT extract(epoch from committed_at)::float8, transactions "
            f'FROM "{schema}"._afterload_checkpoints'
        ).fetchone()
    return tables, (row[0] if row else None), (row[1] if row else 0)


def read_rejects(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        entry = json.loads(line)
        out.append((Path(entry["source"]).name, int(entry["line"])))
    return out


# -- the run ---------------------------------------------------------------------------------


def restart_postgres() -> str:
    versions = [entry.name for entry in Path("/etc/postgresql").iterdir()]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[0], "main", "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return "restarted"


def inject_fault(emulator: DbtCloudEmulator, rng: random.Random) -> str:
    kind = rng.choice(["429", "500", "slow", "drop"])
    if kind == "429":
        emulator.inject(Fault(method="GET", path=r"/runs/?$", status=429, retry_after=1))
    elif kind == "500":
        emulator.inject(Fault(method="POST", path=r"/run/?$", status=500, times=2))
    elif kind == "slow":  # the run is created, the answer comes after the client gave up
        emulator.inject(Fault(method="POST", path=r"/run/?$", status=200, after=True, delay=4.0))
    else:  # the run is created, the connection dropped before any answer
        emulator.inject(Fault(method="POST", path=r"/run/?$", drop=True))
    return kind


def main() -> int:  # noqa: C901  (one scenario, top to bottom; to split like bench/run.py)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--destinations", default="duckdb,postgres")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    console.print(
        f"soak seed {seed} (replay: python soak/run.py --seed {seed} "
        f"--seconds {args.seconds:g} --destinations {args.destinations})"
    )
    # One stream per concern, so the schedule replays the same whatever the timing.
    rng = random.Random(seed)
    kill_rng = random.Random(rng.randrange(2**32))
    fault_rng = random.Random(rng.randrange(2**32))
    api_key = f"soak-key-{secrets.token_hex(8)}"
    pg_password = f"soak-pw-{secrets.token_hex(8)}"
    work = Path(tempfile.mkdtemp(prefix="afterload-soak-"))
    gen = Generator(work / "data", random.Random(rng.randrange(2**32)))

    emulator = DbtCloudEmulator(
        EmulatorSettings(
            accounts={1: [1, 2]}, api_key=api_key, queue_seconds=0.3, run_seconds=0.7, seed=seed
        )
    )
    server = EmulatorServer(emulator)
    server.start()

    destinations = [d.strip() for d in args.destinations.split(",") if d.strip()]
    targets: list[Target] = []
    pg_schema = f"soak_{seed}_{os.getpid()}"
    dsn = PG_DSN.format(password=pg_password)
    for job, dest in enumerate(destinations, start=1):
        config = work / f"{dest}.json"
        if dest == "duckdb":
            block: dict[str, Any] = {"duckdb": {"path": "soak.duckdb"}}
            mode = "skip"
        elif dest == "postgres":
            block = {"postgres": {"dsn": dsn, "schema": pg_schema}}
            mode = "replace"
        else:
            raise SystemExit(f"unknown destination {dest!r}")
        write_config(config, f"soak-{dest}", block, job, server.url, api_key, mode)
        targets.append(Target(dest, config, job))

    env = {**os.environ, "SOAK_DBT_KEY": api_key, "AFTERLOAD_DBT_TIMEOUT": "2"}
    faults: dict[str, int] = {}
    pg_restarts = 0
    began = time.time()
    end = began + args.seconds
    next_kill = {t.name: began + kill_rng.uniform(2, 8) for t in targets}
    next_fault = began + fault_rng.uniform(2, 5)
    pg_restart_at = began + args.seconds * rng.uniform(0.3, 0.6)
    for t in targets:
        t.start(env)
    try:
        while time.time() < end:
            gen.step()
            now = time.time()
            for t in targets:
                if now >= next_kill[t.name]:
                    if kill_rng.random() < 0.8:
                        t.stop(signal.SIGKILL)
                        t.kills += 1
                    else:
                        t.stop(signal.SIGTERM)
                        t.terms += 1
                    t.start(env)
                    next_kill[t.name] = now + kill_rng.uniform(2, 8)
            if now >= next_fault:
                kind = inject_fault(emulator, fault_rng)
                faults[kind] = faults.get(kind, 0) + 1
                next_fault = now + fault_rng.uniform(2, 5)
            if "postgres" in destinations and pg_restarts == 0 and now >= pg_restart_at:
                restart_postgres()
                pg_restarts += 1
            time.sleep(0.05)
        # Drain: no more input, no more faults or kills; let the processes catch up and the
        # trigger's last interval pass, then stop them the way an operator would.
        for t in targets:
            if t.proc is None or t.proc.poll() is not None:
                t.start(env)
        time.sleep(INTERVAL * 2 + 8)
        for t in targets:
            t.stop(signal.SIGTERM)
        finished = time.time()
    finally:
        for t in targets:
            t.stop(signal.SIGKILL)
        server.stop()

    tables, rejects = expected_state(work / "data")
    results: list[tuple[str, bool, str]] = []
    summary = Table(title=f"soak: {args.seconds:g} s, seed {seed}", title_justify="left")
    for col in (
        "destination",
        "documents",
        "commits",
        "kills",
        "SIGTERMs",
        "starts",
        "runs created",
        "bound",
    ):
        summary.add_column(col, justify="right")
    runs_by_job: dict[int, list[dict[str, Any]]] = {}
    for run in emulator.runs:
        runs_by_job.setdefault(int(run["job_definition_id"]), []).append(run)
    for t in targets:
        if t.name == "duckdb":
            got, committed_at, commits = read_duckdb(work / "soak.duckdb")
        else:
            got, committed_at, commits = read_postgres(dsn, pg_schema)
        for table in BINDINGS:
            want = tables[table]
            ok = got[table] == want
            missing = len(set(want) - set(got[table]))
            extra = len(got[table]) - len(want) + missing
            results.append(
                (
                    f"{t.name}.{table} equals the input's state",
                    ok,
                    f"{len(got[table])} rows, {missing} missing, {extra} extra",
                )
            )
            seen = read_rejects(work / f"rejects-soak-{t.name}" / f"{table}.jsonl")
            ok = sorted(seen) == sorted(rejects[table])
            results.append(
                (
                    f"{t.name}.{table} rejects hold every malformed line once",
                    ok,
                    f"{len(seen)} rejected, {len(rejects[table])} malformed",
                )
            )
        runs = sorted(runs_by_job.get(t.job, []), key=lambda r: r["id"])
        bound = int((finished - began) // INTERVAL) + 1 + len(t.starts)
        results.append(
            (
                f"{t.name}: dbt runs within the schedule's bound",
                len(runs) <= bound,
                f"{len(runs)} runs, bound {bound}",
            )
        )
        created = [_epoch(r["created_at"]) for r in runs]
        # A trigger that created two runs reports one and leaves the other unreported while
        # its process lives on. A process killed mid-fire reports nothing more, so: a run
        # nobody reported is a double when the process alive at its creation (processes of a
        # target run one after another) later reported a newer run.
        orphans = []
        for run, when in zip(runs, created, strict=True):
            owner = max((i for i, s in enumerate(t.starts) if s <= when), default=0)
            reported = _reported_runs(t.logs[owner], t.job)
            if run["id"] not in reported and any(r > run["id"] for r in reported):
                orphans.append(run["id"])
        results.append(
            (
                f"{t.name}: no trigger created two runs",
                not orphans,
                f"{len(runs)} runs, {len(orphans)} created twice"
                + (f": {orphans}" if orphans else ""),
            )
        )
        fresh = committed_at is not None and any(c >= committed_at for c in created)
        results.append(
            (
                f"{t.name}: a run was created after the last commit",
                fresh,
                f"last commit {_hms(committed_at)}, last run {_hms(max(created, default=None))}",
            )
        )
        summary.add_row(
            t.name,
            str(gen.documents),
            str(commits),
            str(t.kills),
            str(t.terms),
            str(len(t.starts)),
            str(len(runs)),
            str(bound),
        )
    outputs = "".join(p.read_text(errors="replace") for t in targets for p in t.logs)
    leaked = [s for s in (api_key, pg_password) if s in outputs]
    results.append(
        (
            "no secret in any log or output",
            not leaked,
            f"{len(outputs.splitlines())} log lines read",
        )
    )
    console.print(summary)
    console.print(
        f"faults injected: {faults or 'none'}; PostgreSQL restarts: {pg_restarts}; "
        f"malformed lines: {gen.malformed}"
    )
    verdicts = Table(title="checks", title_justify="left")
    verdicts.add_column("check")
    verdicts.add_column("verdict")
    verdicts.add_column("detail")
    for name, ok, detail in results:
        verdicts.add_row(name, "[green]pass[/green]" if ok else "[red]FAIL[/red]", detail)
    console.print(verdicts)
    passed = all(ok for _, ok, _ in results)
    if "postgres" in destinations:
        _drop_schema(dsn, pg_schema)
    if passed and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        console.print(f"work directory kept: {work}")
    console.print(f"soak {'passed' if passed else 'FAILED'} (seed {seed})")
    return 0 if passed else 1


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _hms(epoch: float | None) -> str:
    return "none" if epoch is None else datetime.fromtimestamp(epoch).strftime("%H:%M:%S.%f")[:-3]


def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    sys.exit(main())
