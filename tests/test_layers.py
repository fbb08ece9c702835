"""The import rules of ARCHITECTURE.md, checked on the source: data flows one way, no module
imports a layer above its own, the HTTP client never sees the config model, no import circle."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

BASE = (
    "afterload.errors",
    "afterload.clock",
    "afterload.durations",
    "afterload.fields",
    "afterload.writability",
    "afterload.redaction",
)
CORE_DATA = (
    "afterload.core.schema",
    "afterload.core.documents",
    "afterload.core.transaction",
    "afterload.core.checkpoint",
    "afterload.core.exactjson",
    "afterload.core.pointers",
    "afterload.core.stopper",
    "afterload.core.committer",
    "afterload.core.trigger_state",
    "afterload.core.survey",
    "afterload.core.values",
    "afterload.core.temporal",
    "afterload.core.repeated_names",
    "afterload.core.column_names",
)
DESTINATION_API = ("afterload.destinations.base",)

#: package prefix → what its modules may import (besides the standard library and libraries)
ALLOWED: dict[str, tuple[str, ...]] = {
    "afterload.core.materializer": (*BASE, *CORE_DATA, *DESTINATION_API),
    "afterload.core": (*BASE, *CORE_DATA),
    "afterload.destinations": (*BASE, *CORE_DATA, "afterload.destinations"),
    "afterload.ndjson": (*BASE, "afterload.core", *DESTINATION_API, "afterload.ndjson"),
    "afterload.triggers": (*BASE, "afterload.triggers", "afterload.__version__"),
    "afterload.config": (
        *BASE,
        "afterload.config",
        "afterload.destinations.config",
        "afterload.ndjson.config",
        "afterload.ndjson.sync_schedule",
        "afterload.triggers.dbt_cloud.config",
        "afterload.triggers.webhook.config",
        "afterload.triggers.dbt_core.config",
    ),
    "afterload.pipeline": ("afterload",),
    "afterload.preflight": ("afterload",),
    "afterload.durable_triggers": ("afterload",),
    "afterload.metrics": ("afterload",),
    "afterload.demo": ("afterload",),
    "afterload.demo_shop": ("afterload",),
    "afterload.cli": ("afterload",),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, *, at_import_time: bool = False) -> set[str]:
    """The afterload names a file imports: anywhere (lazy imports included), or only those
    run when the module is imported (its top level)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes: list[ast.AST] = list(tree.body) if at_import_time else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("afterload"):
                for alias in node.names:
                    found.add(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("afterload"))
    return found


def modules(*, at_import_time: bool = False) -> dict[str, set[str]]:
    return {
        module_name(p): imports(p, at_import_time=at_import_time)
        for p in sorted((SRC / "afterload").rglob("*.py"))
    }


def rule_for(module: str) -> tuple[str, ...] | None:
    best = None
    for prefix in ALLOWED:
        if (module == prefix or module.startswith(prefix + ".")) and (
            best is None or len(prefix) > len(best)
        ):
            best = prefix
    return None if best is None else ALLOWED[best]


def covered(target: str, allowed: tuple[str, ...]) -> bool:
    return any(target == a or target.startswith(a + ".") for a in allowed)


def test_no_module_imports_a_layer_above_its_own() -> None:
    wrong = []
    for module, targets in modules().items():
        allowed = rule_for(module)
        if allowed is None:
            continue
        wrong += [f"{module} imports {t}" for t in sorted(targets) if not covered(t, allowed)]
    assert wrong == []


def test_the_dbt_http_client_never_sees_the_config_model() -> None:
    found = modules()
    for module in ("afterload.triggers.dbt_cloud.client", "afterload.triggers.dbt_cloud.models"):
        assert not any("config" in t for t in found[module]), module


def test_there_is_no_import_circle() -> None:
    found = modules(at_import_time=True)
    # Importing a.b.c runs a, a.b and a.b.c: an edge to each, except to m's own packages,
    # which Python has begun running before m.
    graph = {
        m: {
            t
            for t in found
            if any(x == t or x.startswith(t + ".") for x in ts)
            and t != m
            and not m.startswith(t + ".")
        }
        for m, ts in found.items()
    }
    seen: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                raise AssertionError(" → ".join([*path[path.index(nxt) :], nxt]))
            if nxt not in seen:
                visit(nxt)
        path.pop()
        seen[node] = 2

    for module in sorted(graph):
        if module not in seen:
            visit(module)


def test_no_module_is_over_about_400_lines() -> None:
    long = {
        module_name(p): n
        for p in (SRC / "afterload").rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 440
    }
    assert long == {}
