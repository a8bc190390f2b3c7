"""The import structure of bot/, actions/ and connectors/, read with `ast` (no module is run):
every `import` and `from ... import`, at module level or inside a function, is an edge from
the importing module to the module it names.

- No import cycle between modules, except the ones listed in KNOWN_CYCLE_IMPORTS.
- No cycle between the packages of bot/ (bot.analytics, bot.crm, bot.desk, ...: a module of one
  importing a module of another), except the ones listed in KNOWN_PACKAGE_CYCLE_IMPORTS.
- Imports go one way (../shared/architecture.md): `actions/` and `connectors/` import `bot`;
  `bot` never imports them.

The known cycles are being removed (issue 12): delete an entry when its import goes away (a
test says when one has); never add one.

Run alone: `.venv/bin/python -m pytest tests/test_imports.py -q`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "actions", "connectors")

# Imports that close a cycle between modules, known and to be removed: (importer, imported).
KNOWN_CYCLE_IMPORTS: set[tuple[str, str]] = set()

# Imports that close a cycle between packages of bot/, known and to be removed.
KNOWN_PACKAGE_CYCLE_IMPORTS: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p
            for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports anywhere in its code (functions included)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package
                package = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1]
                                + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from package import module` imports the module; `from module import name`, the module
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a name inside a module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(components)


def test_no_import_cycle_but_the_known_ones():
    edges = {name: targets - {b for a, b in KNOWN_CYCLE_IMPORTS if a == name}
             for name, targets in graph().items()}
    found = cycles(edges)
    assert not found, ("import cycles between modules (a module imports, maybe inside a "
                       f"function, one that imports it back): {found}")


def package_of(module: str) -> str:
    """bot's subpackage (`bot.desk`) or top-level module (`bot.settings`); `actions`,
    `connectors`."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "bot" else parts[0]


def package_graph(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """Edges between bot's subpackages (its top-level modules, e.g. bot.production or
    bot.runner, put the packages together and are left out)."""
    packages = {package_of(m) for m in edges if m.count(".") >= 2}
    out: dict[str, set[str]] = {p: set() for p in packages}
    for name, targets in edges.items():
        for target in targets:
            a, b = package_of(name), package_of(target)
            if a != b and a in packages and b in packages:
                out[a].add(b)
    return out


def test_no_package_cycle_in_bot_but_the_known_ones():
    edges = {name: targets - {b for a, b in KNOWN_PACKAGE_CYCLE_IMPORTS if a == name}
             for name, targets in graph().items()}
    found = cycles(package_graph(edges))
    assert not found, f"import cycles between packages of bot/: {found}"


def test_the_known_cycles_are_still_there():
    """When one of them is fixed, take it off its list so that it cannot come back."""
    edges = graph()
    for known, components in ((KNOWN_CYCLE_IMPORTS, cycles(edges)),
                              (KNOWN_PACKAGE_CYCLE_IMPORTS, cycles(package_graph(edges)))):
        gone = sorted((a, b) for a, b in known if b not in edges.get(a, set()))
        assert not gone, f"no longer imported, remove from the known cycles: {gone}"
        level = package_of if known is KNOWN_PACKAGE_CYCLE_IMPORTS else str
        closed = sorted((a, b) for a, b in known
                        if not any({level(a), level(b)} <= set(c) for c in components))
        assert not closed, f"no longer part of a cycle, remove from the known cycles: {closed}"


def test_bot_never_imports_actions_or_connectors():
    wrong = sorted((name, target) for name, targets in graph().items()
                   if name.split(".")[0] == "bot" for target in targets
                   if target.split(".")[0] in ("actions", "connectors"))
    assert not wrong, f"bot/ must not import actions/ or connectors/: {wrong}"


def test_the_reader_sees_imports_inside_functions():
    edges = graph()
    assert "actions.handover" in edges["actions.moving"]  # imported inside `run`
    assert "bot.analytics.queries" in edges["bot.desk.console"]  # `from bot.analytics import`
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
