"""The machine, the reading of the figures, RESULTS.md's section and the chart."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import duckdb
import psycopg
from data import Data
from procs import ensure_venv, package_versions
from runner import Figure, Postgres
from settings import (
    DESTINATION_TITLE,
    DESTINATIONS,
    DLT_VENV,
    HERE,
    RESULTS_MD,
    ROOT,
    SECTION,
    TOOLS_REQUIREMENTS,
    TOOLS_VENV,
)
from summary import Bar, Row, bar_lines, bars, human_rate, human_rss, summarize, tables


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


def destination_reading(rows: dict[tuple[str, str, str], Row], dest: str, data: Data) -> list[str]:
    """The sentences on one destination: afterload against the native path, then dlt."""
    parts: list[str] = []

    def get(case: str, tool: str) -> Row | None:
        row = rows.get((dest, case, tool))
        return row if row is not None and row.runs else None

    title = DESTINATION_TITLE[dest]
    native, ours = get("append", "native"), get("append", "afterload")
    merge_n, merge_o = get("merge", "native"), get("merge", "afterload")
    up_n, up_o = get("upsert", "native"), get("upsert", "afterload")
    if not (native and ours):
        if native and not ours:
            parts.append(f"On {title} only the other tools were measured.")
        return parts
    text = (
        f"On {title}, afterload lands the {data.docs:,} documents into an empty table at "
        f"{human_rate(ours.rate)}docs/s, {native.median / ours.median:.0%} of the native "
        f"path's {human_rate(native.rate)}docs/s"
    )
    if merge_n and merge_o:
        text += f" ({merge_n.median / merge_o.median:.0%} with a primary key)"
    if up_n and up_o:
        text += f"; the upsert of {data.updates:,} takes {up_o.median / up_n.median:.2f}× native"
    parts.append(text + ".")
    dicts, arrow = get("append", "dlt-dicts"), get("append", "dlt-arrow")
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
    return parts


def missed_reading(found: list[Bar], profiles: dict[str, list[str]]) -> list[str]:
    """The bars missed and, from the profiles, where afterload's time goes."""
    parts: list[str] = []
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
    return parts


def reading(
    rows: dict[tuple[str, str, str], Row],
    found: list[Bar],
    data: Data,
    profiles: dict[str, list[str]],
) -> str:
    """The paragraph under the tables, from the figures themselves."""
    parts = [text for dest in DESTINATIONS for text in destination_reading(rows, dest, data)]
    parts += missed_reading(found, profiles)
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
