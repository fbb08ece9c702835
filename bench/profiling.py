"""py-spy profiles of the afterload cases that miss a bar, cut down to where the time goes."""

from __future__ import annotations

import re
import shutil
from collections import Counter

from procs import ensure_venv, spawn
from runner import Bench
from settings import TOOLS_REQUIREMENTS, TOOLS_VENV


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
