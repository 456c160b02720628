"""The layout's house rules: small modules, few at the top, no import cycle, kinds in one place."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from jetwatch.targets.kinds import SPECS

PACKAGE = Path(__file__).resolve().parents[2] / "jetwatch"
MAX_LINES = 400
MAX_TOP_MODULES = 8
# Where a target kind may be spelled: the targets themselves and the configuration. The API
# clients and the emulators serve one API each and name it; they never decide by a kind.
KIND_HOMES = ("targets", "config", "apis", "emulators")


def modules() -> Iterator[tuple[str, Path]]:
    """(dotted name, path) of every module of the package."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def imported(name: str, path: Path) -> set[str]:
    """Every jetwatch module ``name`` imports, wherever the import stands (TYPE_CHECKING too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m == "jetwatch" or m.startswith("jetwatch.")}


def test_no_module_is_over_400_lines() -> None:
    """A module that grows past 400 lines hides a second job."""
    long = {n: len(p.read_text().splitlines()) for n, p in modules()}
    assert {n: lines for n, lines in long.items() if lines > MAX_LINES} == {}


def test_few_modules_at_the_top() -> None:
    """The top of the package holds the leaves only; the rest lives in its stage's folder."""
    top = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert len(top) <= MAX_TOP_MODULES, sorted(top)


def test_no_import_cycle() -> None:
    """The import graph of the package's modules is acyclic, TYPE_CHECKING imports included."""
    names = dict(modules())
    graph = {
        name: {m for m in imported(name, path) if m in names and m != name}
        for name, path in names.items()
    }
    # A package's __init__ imported on the way to a submodule is not an edge of its own.
    for edges in graph.values():
        edges -= {m for m in list(edges) if any(e.startswith(m + ".") for e in edges)}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_target_kinds_are_spelled_only_where_targets_live() -> None:
    """Outside targets/ and config/ code asks a TargetSpec; it never compares kind strings."""
    kinds = set(SPECS)
    spelled = []
    for name, path in modules():
        if name.split(".")[1:2] and name.split(".")[1] in KIND_HOMES:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in kinds:
                spelled.append(f"{name}:{node.lineno} {node.value!r}")
    assert spelled == []
