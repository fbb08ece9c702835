"""Issue 12's bar table for DuckDB: afterload against DuckDB's own SQL, side by side.

    .venv/bin/python bench/bench_bars.py [--repeat 3] [--shapes orders,flat,nested,longstr]
        [--before path/to/old/src] [--rss-docs 5000000] [--out bench/BARS.md]

Every side is a whole child process (interpreter start, imports, DuckDB's checkpoint at close
included), so wall and CPU (the child's user + system time, DuckDB's threads included) compare
like with like. Cases are interleaved and rotated per repeat; the median of the repeats is
reported with the load average before and after. ``--before`` runs an older checkout's
``src`` the same way, so before and after are one sitting.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_duckdb import DATA, generate, standard_inputs  # noqa: E402
from bench_sqlpath import flat, gen, longstr, nested  # noqa: E402

Result = tuple[float, float, int]  # wall s, CPU s, peak RSS KiB


def child(code: str, env: dict[str, str] | None = None) -> Result:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"a benchmark child failed: {code[:200]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def duck(db: Path, *sql: str) -> Result:
    stmts = "".join(f"c.execute({s!r});" for s in sql)
    return child(f"import duckdb; c=duckdb.connect({str(db)!r}); {stmts} c.close()")


UNCHECKED = """
import afterload.destinations.duckdb.survey as _s
from afterload.core.survey import Group as _G
_memo = {}
_real = _s.Surveyor._groups
def _groups(self, path, shape, columns, longest, *, ordered):
    key = (columns, ordered, tuple(shape.columns))
    seen = _memo.get(key)
    if seen is None or len(seen) != 1:
        _memo[key] = seen = _real(self, path, shape, columns, longest, ordered=ordered)
        return seen
    g = seen[0]
    return [_G(g.names, g.classes, g.suspect, path.read_bytes().count(b"\\n"), 0, g.sample)]
_s.Surveyor._groups = _groups
"""
"""An upper bound, never a product: after a kind of line was surveyed once, later
transactions skip DuckDB's checks (their lines are only counted), so this side shows what
afterload would take if the survey cost nothing."""


def afterload(
    work: Path, src: Path, *, store_document: bool = True, unchecked: bool = False
) -> Result:
    binding = {"source": "in/*.jsonl", "table": "t", "key": ["/id"]}
    if not store_document:
        binding["store_document"] = False
    config = {
        "name": "bench",
        "destination": {"duckdb": {"path": "afterload.duckdb"}},
        "bindings": [binding],
        "transaction": {"max_documents": 200_000, "max_bytes": 1 << 30},
    }
    path = work / "afterload.yaml"
    path.write_text(yaml.safe_dump(config))
    code = (UNCHECKED if unchecked else "") + (
        "import sys; from afterload.config import load_config;"
        "from afterload.cli.run import run_materialization;"
        f"sys.exit(run_materialization(load_config({str(path)!r}), once=True))"
    )
    return child(code, env={**os.environ, "PYTHONPATH": str(src)})


def fresh(work: Path, *inputs: Path) -> Path:
    shutil.rmtree(work, ignore_errors=True)
    (work / "in").mkdir(parents=True)
    for i, f in enumerate(inputs):
        (work / "in" / f"{i}.jsonl").symlink_to(f.resolve())
    return work


class TableSql:
    """DDL and INSERT … SELECT for the table shape afterload made (its typed columns)."""

    def __init__(self, db: Path, *, document: bool, pk: bool, zstd: bool = True) -> None:
        con = duckdb.connect(str(db), read_only=True)
        cols = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 't' ORDER BY ordinal_position"
        ).fetchall()
        con.close()
        typed = [(n, t) for n, t in cols if n not in ("flow_document", "flow_published_at")]
        defs = [f'"{n}" {t}' + (" NOT NULL" if n == "id" else "") for n, t in typed]
        if document:
            # afterload's own table stores flow_document with zstd (the same shape here).
            defs.append("flow_document JSON NOT NULL" + (" USING COMPRESSION zstd" if zstd else ""))
        defs.append("flow_published_at TIMESTAMPTZ NOT NULL")
        if pk:
            defs.append('PRIMARY KEY ("id")')
        self.ddl = f"CREATE TABLE t ({', '.join(defs)})"
        self.struct = "{" + ", ".join(f'"{n}": "{t}"' for n, t in typed) + "}"
        doc = ["flow_document"] if document else []
        self.target = ", ".join([*(f'"{n}"' for n, _ in typed), *doc, "flow_published_at"])
        self.values = ", ".join(
            [*(f"s['{n}']" for n, _ in typed), *(["json"] if document else []), "now()"]
        )

    def insert(self, src: Path) -> str:
        return (
            f"INSERT INTO t ({self.target}) SELECT {self.values} FROM (SELECT json_transform("
            f"json, '{self.struct}') AS s, json FROM read_json_objects('{src}', "
            "format='newline_delimited'))"
        )


def main() -> None:  # noqa: C901  (one linear script: setup, cases, report)
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--shapes", default="orders,flat,nested,longstr")
    ap.add_argument("--before", type=Path, default=None, help="an older checkout's src")
    ap.add_argument("--rss-docs", type=int, default=5_000_000)
    ap.add_argument("--out", type=Path, default=HERE / "BARS.md")
    ap.add_argument(
        "--unchecked", action="store_true", help="add the upper bound: no survey after the first"
    )
    args = ap.parse_args()
    now_src = ROOT / "src"
    for src in (now_src, args.before):
        # An installed package has its bytecode; a checkout run with PYTHONDONTWRITEBYTECODE
        # would compile every module in every child (~0.1 s here), which no user pays.
        if src is not None:
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(src)], check=True)
    orders, updates = standard_inputs(1_000_000, 200_000)
    inputs = {
        "orders": orders,
        "flat": gen("flat", 1_000_000, flat),
        "nested": gen("nested", 1_000_000, nested),
        "longstr": gen("longstr", 200_000, longstr),
    }
    shapes = [s for s in args.shapes.split(",") if s]
    base = DATA / "work-bars"
    base.mkdir(parents=True, exist_ok=True)
    load0 = Path("/proc/loadavg").read_text().split()[:3]

    # Templates: afterload's own table per shape (its column types for the SQL ceilings), and
    # the 1 M-row orders table each upsert side starts from (copied per run).
    sqls: dict[str, dict[str, TableSql]] = {}
    for shape in shapes:
        w = fresh(base / f"tpl-{shape}", inputs[shape])
        afterload(w, now_src)
        db = w / "afterload.duckdb"
        sqls[shape] = {
            "doc": TableSql(db, document=True, pk=False),
            "doc-default": TableSql(db, document=True, pk=False, zstd=False),
            "doc-pk": TableSql(db, document=True, pk=True),
            "nodoc": TableSql(db, document=False, pk=False),
        }
    upsert_bases: dict[str, Path] = {}
    sqlbase = base / "tpl-orders-sql.duckdb"
    if "orders" in shapes:
        upsert_bases["now"] = base / "tpl-orders"
        if args.before is not None:
            w = fresh(base / "tpl-orders-before", orders)
            afterload(w, args.before)
            upsert_bases["before"] = w
        t = sqls["orders"]["doc"]
        sqlbase.unlink(missing_ok=True)
        duck(sqlbase, t.ddl, t.insert(orders), "CHECKPOINT")

    results: dict[tuple[str, str], list[Result]] = {}
    scratch = base / "run"

    def load_cases(shape: str) -> list[tuple[str, Callable[[], Result]]]:
        src = inputs[shape]
        db = base / "sql.duckdb"

        def sql(kind: str) -> Callable[[], Result]:
            def go() -> Result:
                db.unlink(missing_ok=True)
                t = sqls[shape][kind]
                return duck(db, t.ddl, t.insert(src))

            return go

        def ctas() -> Result:
            db.unlink(missing_ok=True)
            return duck(db, f"CREATE TABLE t AS SELECT * FROM read_json('{src}')")

        def ours(code: Path, store: bool = True, unchecked: bool = False) -> Callable[[], Result]:
            return lambda: afterload(
                fresh(scratch, src), code, store_document=store, unchecked=unchecked
            )

        cases = [
            ("CTAS read_json", ctas),
            ("INSERT…SELECT, same shape (no key)", sql("doc")),
            ("INSERT…SELECT, same shape + PRIMARY KEY", sql("doc-pk")),
            ("INSERT…SELECT, flow_document default compression", sql("doc-default")),
            ("INSERT…SELECT, no flow_document", sql("nodoc")),
            ("afterload now", ours(now_src)),
            ("afterload now, store_document: false", ours(now_src, False)),
        ]
        if args.before is not None:
            cases.append(("afterload before", ours(args.before)))
        if args.unchecked:
            cases.append(
                ("afterload, survey skipped after the first (bound)", ours(now_src, True, True))
            )
        return cases

    def upsert_cases() -> list[tuple[str, Callable[[], Result]]]:
        def ours(which: str, code: Path) -> Callable[[], Result]:
            def go() -> Result:
                shutil.rmtree(scratch, ignore_errors=True)
                shutil.copytree(upsert_bases[which], scratch, symlinks=True)
                (scratch / "in" / "1.jsonl").symlink_to(updates.resolve())
                return afterload(scratch, code)

            return go

        def exact_sql() -> Result:
            db = base / "upsert.duckdb"
            shutil.copy(sqlbase, db)
            t = sqls["orders"]["doc"]
            reduced = (
                "CREATE TEMP TABLE r AS SELECT s, json FROM (SELECT row_number() OVER () AS n, "
                f"json_transform(json, '{t.struct}') AS s, json FROM read_json_objects("
                f"'{updates}', format='newline_delimited')) "
                "QUALIFY row_number() OVER (PARTITION BY s.id ORDER BY n DESC) = 1"
            )
            insert = f"INSERT INTO t ({t.target}) SELECT {t.values} FROM r"
            return duck(db, reduced, "DELETE FROM t USING r WHERE t.id = r.s.id", insert)

        cases = [
            ("DELETE USING + INSERT (exact SQL)", exact_sql),
            ("afterload now", ours("now", now_src)),
        ]

        if "before" in upsert_bases and args.before is not None:
            cases.append(("afterload before", ours("before", args.before)))
        return cases

    rss: list[tuple[str, Result]] = []

    def report(done: int) -> None:
        """Write what is measured so far (a long run stopped early still leaves figures)."""
        load1 = Path("/proc/loadavg").read_text().split()[:3]

        lines = [
            f"DuckDB {duckdb.__version__}, Python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs; median of {done} interleaved repeats; "
            f"load average before {' '.join(load0)}, after {' '.join(load1)}",
            "",
            "| case | side | wall s | CPU s | peak RSS MiB | wall range |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        med: dict[tuple[str, str], tuple[float, float]] = {}
        for (case, side), runs in results.items():
            w = statistics.median(r[0] for r in runs)
            c = statistics.median(r[1] for r in runs)
            m = statistics.median(r[2] for r in runs) / 1024
            med[(case, side)] = (w, c)
            lo, hi = min(r[0] for r in runs), max(r[0] for r in runs)
            lines.append(f"| {case} | {side} | {w:.2f} | {c:.2f} | {m:.0f} | {lo:.2f}–{hi:.2f} |")
        for side, (w, c, m) in rss:
            lines.append(
                f"| orders {args.rss_docs // 1_000_000}M load, one run | {side} | "
                f"{w:.2f} | {c:.2f} | {m / 1024:.0f} | |"
            )
        lines += ["", "Bars (wall time; CPU in brackets):", ""]
        for shape in shapes:
            case = f"{shape} 1M load" if shape != "longstr" else "longstr 200k load"
            ours = med.get((case, "afterload now"))
            if ours is None:
                continue
            for side, bar in (("CTAS read_json", 0.5), ("INSERT…SELECT, same shape (no key)", 0.8)):
                w, c = med[(case, side)]
                pct, cpct = w / ours[0], c / ours[1]
                verdict = "met" if pct >= bar else "missed"
                lines.append(
                    f"- {case}: afterload at {pct:.0%} of {side} ({cpct:.0%} by CPU); "
                    f"bar ≥ {bar:.0%}: **{verdict}**"
                )
        up = med.get(("orders 200k upsert into 1M", "afterload now"))
        if up is not None:
            w, c = med[("orders 200k upsert into 1M", "DELETE USING + INSERT (exact SQL)")]
            ratio = up[0] / w
            verdict = "met" if ratio <= 1.2 else "missed"
            lines.append(
                f"- upsert: afterload takes {ratio:.2f}× the exact SQL ({up[1] / c:.2f}× by CPU); "
                f"bar ≤ 1.2×: **{verdict}**"
            )
        for side, (_, _, m) in rss:
            verdict = "met" if m / 1024 <= 800 else "missed"
            lines.append(
                f"- {side}, {args.rss_docs:,} docs: peak RSS {m / 1024:.0f} MiB; "
                f"bar ≤ 800 MiB: **{verdict}**"
            )
        text = "\n".join(lines) + "\n"
        args.out.write_text(text)
        print(text)

    for rep in range(args.repeat):
        for shape in shapes:
            cases = load_cases(shape)
            k = rep % len(cases)
            for label, fn in cases[k:] + cases[:k]:
                results.setdefault(
                    (f"{shape} 1M load" if shape != "longstr" else "longstr 200k load", label), []
                ).append(fn())
        if "orders" in shapes:
            cases = upsert_cases()
            k = rep % len(cases)
            for label, fn in cases[k:] + cases[:k]:
                results.setdefault(("orders 200k upsert into 1M", label), []).append(fn())
        print(f"repeat {rep + 1} done", file=sys.stderr, flush=True)
        report(rep + 1)

    if args.rss_docs:
        big = generate(DATA / f"orders-{args.rss_docs}.jsonl", args.rss_docs, seed=1)
        rss.append(("afterload now", afterload(fresh(scratch, big), now_src)))
        if args.before is not None:
            rss.append(("afterload before", afterload(fresh(scratch, big), args.before)))
    report(args.repeat)
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
