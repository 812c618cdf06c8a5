"""No import cycles in ``src/opsmith``: every module can be read, and moved, without its importers.

The graph is built from the source with :mod:`ast`, counting every import that runs: at module
level and inside functions (a deferred import still ties two modules together, and hides the
cycle from Python itself). Imports under ``if TYPE_CHECKING:`` never run and are left out.
Importing ``a.b.c`` also runs ``a`` and ``a.b`` unless the importer already lives inside them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import opsmith

SRC = Path(opsmith.__file__).parent


def _module_files() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, whether it is a package's ``__init__``)."""
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if package else parts)] = (path, package)
    return found


MODULES = _module_files()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            yield from (n for branch in child.orelse for n in _import_nodes_of(branch))
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _import_nodes(child)


def _import_nodes_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    yield from _import_nodes(node)


def imports_in(source: str, module: str, *, package: bool, known: set[str]) -> set[str]:
    """The modules of ``known`` that the code of ``module`` (``source``) imports, at any depth."""
    here = module if package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
            # ``from pkg import name`` needs pkg's own code unless every name is a submodule of it.
            targets = submodules + ([base] if len(submodules) < len(node.names) else [])
        for target in targets:
            parts = target.split(".")
            # Importing a.b.c first runs a and a.b, except those the importer lives in (already running).
            above = {
                ".".join(parts[:i]) for i in range(1, len(parts)) if not module.startswith(".".join(parts[:i]) + ".")
            }
            found |= {name for name in {target, *above} if name in known and name != module}
    return found


def imports_of(module: str) -> set[str]:
    """The opsmith modules ``module`` imports."""
    path, package = MODULES[module]
    return imports_in(path.read_text(encoding="utf-8"), module, package=package, known=set(MODULES))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while (top := stack.pop()) != node:
                component.append(top)
            component.append(node)
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_path_through(graph, set(component), component[0]) for component in components]


def _path_through(graph: dict[str, set[str]], members: set[str], start: str) -> list[str]:
    """A cycle from ``start`` back to itself, inside one component (breadth first: the shortest)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & members):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a component always has one


def test_src_has_no_import_cycle() -> None:
    graph = {module: imports_of(module) for module in MODULES}
    cycles = [" -> ".join(cycle) for cycle in _cycles(graph)]
    assert cycles == [], "import cycles (break each by moving what both sides need into a third module):\n" + "\n".join(
        cycles
    )


def test_the_graph_counts_deferred_imports_and_skips_type_checking_ones() -> None:
    known = {"p", "p.a", "p.b", "p.c", "p.d", "q", "q.e", "r"}
    source = (
        "from typing import TYPE_CHECKING\n"
        "from p import b\n"
        "if TYPE_CHECKING:\n"
        "    from p.c import Thing\n"
        "    import r\n"
        "def f():\n"
        "    from . import d\n"
        "    import q.e\n"
        "    from p import helper\n"
    )
    # p.b and p.d are submodules; ``from p import helper`` needs p's own code; q.e runs q first.
    assert imports_in(source, "p.a", package=False, known=known) == {"p", "p.b", "p.d", "q", "q.e"}
    assert imports_in("from . import b\nfrom .a import x\n", "p", package=True, known=known) == {"p.a", "p.b"}


def test_a_cycle_is_found_and_printed_as_a_path() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
