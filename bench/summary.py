"""Figures folded into rows (median of runs), the tables, and the speed bars read from them."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from runner import Figure
from settings import (
    CASE_TITLE,
    CASES,
    DESTINATION_TITLE,
    DESTINATIONS,
    NATIVE_HOW,
    TOOL_TITLE,
    TOOLS,
)


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
