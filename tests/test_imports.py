"""The import structure of bot/, actions/ and connectors/, read with `ast` (no module is run):
every `import` and `from ... import`, at module level or inside a function, is an edge from
the importing module to the module it names.

- No import cycle between modules of bot/, actions/, connectors/ and bench/.
- No cycle between the packages of bot/ (bot.analytics, bot.crm, bot.desk, ...: a module of one
  importing a module of another).
- Imports go one way (../shared/architecture.md): `actions/` and `connectors/` import `bot`;
  `bot` never imports them; the benchmarks import the product, never the reverse.

Run alone: `.venv/bin/python -m pytest tests/test_imports.py -q`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "actions", "connectors", "bench")

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


def test_no_import_cycle():
    found = cycles(graph())
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


def test_no_package_cycle_in_bot():
    found = cycles(package_graph(graph()))
    assert not found, f"import cycles between packages of bot/: {found}"


def test_bot_never_imports_actions_or_connectors():
    wrong = sorted((name, target) for name, targets in graph().items()
                   if name.split(".")[0] == "bot" for target in targets
                   if target.split(".")[0] in ("actions", "connectors", "bench"))
    assert not wrong, f"bot/ must not import actions/, connectors/ or bench/: {wrong}"


def test_the_product_never_imports_the_benchmarks():
    wrong = sorted((name, target) for name, targets in graph().items()
                   if name.split(".")[0] != "bench" for target in targets
                   if target.split(".")[0] == "bench")
    assert not wrong, f"only bench/ imports bench/: {wrong}"


def test_the_reader_sees_imports_inside_functions():
    edges = graph()
    assert "actions.handover" in edges["actions.moving"]  # imported inside `run`
    assert "bot.analytics.queries" in edges["bot.desk.console"]  # `from bot.analytics import`
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert package_graph({"bot.crm.service": {"bot.notify.outbox"},
                          "bot.notify.outbox": {"bot.crm.models"}}) == {
        "bot.crm": {"bot.notify"}, "bot.notify": {"bot.crm"}}


def test_the_action_server_does_not_load_tensorflow():
    """The actions share helpers with the NLU components but not their imports: the action
    server stays a small process (bench/RESULTS.md, peak memory)."""
    import subprocess
    import sys

    code = ("import sys, actions, bot.action_server; "
            "print(sorted(m for m in ('tensorflow', 'rasa.nlu', 'rasa.core') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
