"""Packages own what their names say, and layers import downwards only, read from the source.

- no import circle between the package's modules (module-level imports, type-only ones included);
- ``config`` (the settings) is the bottom: it imports ``defaults`` and nothing else of the package;
- the engine and the runtimes never import the server or the CLI; the server's core (the lane, the
  failure policy, host work) never imports the dialects, routes or middleware above it;
- ``server/middleware`` holds only middleware: each module has a class that wraps an ASGI app, and
  only the app (or other middleware) imports them: nothing there is a library for other layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "pi_axera_sd"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module -> the package's modules it imports at module level (not inside functions)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        nodes = list(ast.parse(path.read_text(encoding="utf-8")).body)
        while nodes:
            node = nodes.pop()
            if isinstance(node, ast.If):  # `if TYPE_CHECKING:` blocks count: a circle is a circle
                nodes += node.body + node.orelse
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:  # `from package import module` depends on the module
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in modules else node.module)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


GRAPH = _imports()


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(GRAPH):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circle():
    assert _cycle() is None, " -> ".join(_cycle() or [])


def test_settings_are_the_bottom_layer():
    assert GRAPH["pi_axera_sd.config"] <= {"pi_axera_sd.defaults"}, GRAPH["pi_axera_sd.config"]


def _importers_of(prefixes: tuple[str, ...], users: tuple[str, ...]) -> list[str]:
    return [
        f"{m} -> {dep}"
        for m, deps in GRAPH.items()
        if m.startswith(users)
        for dep in deps
        if dep.startswith(prefixes)
    ]


def test_layers_import_downwards():
    above_engine = ("pi_axera_sd.server", "pi_axera_sd.cli", "pi_axera_sd.modeltools", "pi_axera_sd.loadtest")
    assert _importers_of(above_engine, ("pi_axera_sd.engine", "pi_axera_sd.runtime")) == []
    above_core = (
        "pi_axera_sd.server.dialects",
        "pi_axera_sd.server.routes",
        "pi_axera_sd.server.middleware",
        "pi_axera_sd.server.app",
    )
    assert _importers_of(above_core, ("pi_axera_sd.server.core",)) == []


def test_middleware_holds_only_middleware():
    folder = PACKAGE / "server" / "middleware"
    for path in folder.glob("*.py"):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        wrappers = [
            cls.name
            for cls in tree.body
            if isinstance(cls, ast.ClassDef)
            and (
                {"__init__", "__call__"}
                <= {n.name for n in cls.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
                or any(isinstance(n, ast.AsyncFunctionDef) and n.name == "dispatch" for n in cls.body)
            )
        ]
        assert wrappers, f"{path.name} defines no middleware class"
    users = [
        f"{m} -> {dep}"
        for m, deps in GRAPH.items()
        for dep in deps
        if dep.startswith("pi_axera_sd.server.middleware.")
        # the OpenAPI document says which routes the auth middleware leaves open
        and not m.startswith(("pi_axera_sd.server.middleware", "pi_axera_sd.server.app"))
        and m != "pi_axera_sd.server.dialects.apidoc"
    ]
    assert users == []


def test_every_module_imports():
    """A moved name that a module still imports from its old home fails here, in seconds."""
    import importlib
    import pkgutil

    import pi_axera_sd

    names = [m.name for m in pkgutil.walk_packages(pi_axera_sd.__path__, "pi_axera_sd.")]
    for name in names:
        if not name.endswith("__main__"):
            importlib.import_module(name)
    assert len(names) == len(GRAPH) - 1  # every file (pi_axera_sd itself is not walked)
