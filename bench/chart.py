"""Draw bench/results.png from a results JSON of bench/run.py. Runs in bench/.venv-tools.

    bench/.venv-tools/bin/python bench/chart.py bench/data/results-full.json bench/results.png

Documents per second (log scale) per case and tool, the median as the bar and the min–max
spread as the whisker; the native bulk path, the ceiling, is a dashed line across its case.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

DESTINATIONS = [("duckdb", "DuckDB"), ("postgres", "PostgreSQL")]
CASES = [
    ("append", "append / delta\ninto empty"),
    ("merge", "merge\ninto empty"),
    ("upsert", "upsert 200k\ninto 1M"),
]
TOOLS = [
    ("afterload", "afterload", "#1f6fb4"),
    ("dlt-dicts", "dlt, parsed dicts", "#d9822b"),
    ("dlt-arrow", "dlt, Arrow tables", "#e8b86d"),
    ("native", "native bulk path", "#9e9e9e"),
]


def label(rate: float) -> str:
    if rate >= 1e6:
        return f"{rate / 1e6:.1f}M"
    if rate >= 1e3:
        return f"{rate / 1e3:.0f}k"
    return f"{rate:.0f}"


def main() -> int:
    result: dict[str, Any] = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    figures = [f for f in result["figures"] if f["ok"]]
    docs, updates = result["data"]["docs"], result["data"]["updates"]
    cases = [
        (key, title.replace("200k", f"{updates // 1000}k").replace("1M", f"{docs / 1e6:g}M"))
        for key, title in CASES
    ]
    dests = [d for d in DESTINATIONS if any(f["destination"] == d[0] for f in figures)]
    fig, axes = plt.subplots(1, len(dests), figsize=(6.2 * len(dests), 5.2), squeeze=False)
    width = 0.2
    top = max((f["docs"] / f["seconds"] for f in figures), default=1.0)
    for ax, (dest, dest_title) in zip(axes[0], dests, strict=True):
        for ci, (case, _) in enumerate(cases):
            rates = {
                tool: [
                    f["docs"] / f["seconds"]
                    for f in figures
                    if (f["destination"], f["case"], f["tool"]) == (dest, case, tool)
                ]
                for tool, _, _ in TOOLS
            }
            half = statistics.median(rates["native"]) / 2 if rates["native"] else 0.0
            for ti, (tool, _, color) in enumerate(TOOLS):
                runs = rates[tool]
                x = ci + (ti - 1.5) * width
                if not runs:
                    ax.text(x, 1.2e3, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
                    continue
                mid = statistics.median(runs)
                ax.bar(
                    x,
                    mid,
                    width * 0.92,
                    color=color,
                    hatch="//" if tool == "native" else None,
                    edgecolor="white" if tool != "native" else "#616161",
                    linewidth=0.5,
                )
                if len(runs) > 1:
                    ax.errorbar(
                        x,
                        mid,
                        yerr=[[mid - min(runs)], [max(runs) - mid]],
                        color="#333333",
                        capsize=2,
                        linewidth=0.8,
                    )
                above = max(mid, half) if tool == "afterload" else mid  # clear of the bar line
                ax.text(x, above * 1.12, label(mid), ha="center", va="bottom", fontsize=7)
                if tool == "native":
                    ax.hlines(
                        mid,
                        ci - 2.2 * width,
                        ci + 2.2 * width,
                        colors="#424242",
                        linestyles="dashed",
                        linewidth=1.1,
                    )
                    # afterload's bar: half the native throughput (for the upsert: 2x its time)
                    ax.hlines(
                        mid / 2,
                        ci - 2.2 * width,
                        ci - 1.0 * width,
                        colors="#1f6fb4",
                        linestyles="dotted",
                        linewidth=1.4,
                    )
        ax.set_yscale("log")
        ax.set_ylim(1e3, top * 4)
        ax.set_xticks(range(len(cases)), [t for _, t in cases])
        ax.set_title(dest_title, fontsize=12)
        ax.grid(axis="y", which="major", alpha=0.3)
        ax.set_axisbelow(True)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0][0].set_ylabel("documents per second (log scale)")
    handles: list[Any] = [
        Patch(color=c, hatch="//" if t == "native" else None, label=name) for t, name, c in TOOLS
    ]
    handles.append(Line2D([], [], color="#424242", linestyle="dashed", label="native ceiling"))
    handles.append(
        Line2D([], [], color="#1f6fb4", linestyle="dotted", label="afterload's bar (½ native)")
    )
    fig.legend(handles=handles, loc="lower center", ncol=6, frameon=False, fontsize=9)
    dv = result["machine"].get("dlt_venv", {})
    fig.suptitle(
        f"{docs:,} order-like documents, median of {result['runs']} runs "
        f"(dlt dicts: {result['dlt_dict_runs']}); whiskers min–max; dlt {dv.get('dlt', '?')}, "
        f"{result['machine']['cpus']} CPUs",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    fig.savefig(out, dpi=130)
    return 0


if __name__ == "__main__":
    sys.exit(main())
