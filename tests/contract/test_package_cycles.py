"""No two of vopt's packages import each other, directly or through others, counting every import statement
(function-level ones too: a lazy import is a dependency paid later, and a cycle through it still means
neither package can be understood or tested without the other). The nodes are vopt's top-level packages
and modules (vopt.core, vopt.pipeline, vopt.registry, ...); inside one package, modules may depend on each
other in either direction only where the file graph has no cycle either (second test)."""

from __future__ import annotations

import ast
from collections.abc import Iterable

from tests.conftest import REPO


def _module(path) -> str:
    rel = path.relative_to(REPO)
    return ".".join(rel.with_suffix("").parts).removesuffix(".__init__")


def import_edges() -> list[tuple[str, str, str]]:
    """(importer module, imported vopt module, file:line) for every import in vopt/."""
    found = []
    for path in sorted((REPO / "vopt").rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        module = _module(path)
        rel = path.relative_to(REPO)
        for node in ast.walk(ast.parse(path.read_text(), str(rel))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            found += [(module, n, f"{rel}:{node.lineno}") for n in names if n.startswith("vopt.")]
    return found


def cycles(edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        if a != b:
            graph.setdefault(a, set()).add(b)
            graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_package_imports_itself_through_another():
    edges = import_edges()
    packages = [(_package(a), _package(b)) for a, b, _ in edges]
    found = cycles(packages)
    where = {
        (_package(a), _package(b)): w for a, b, w in edges if _package(a) != _package(b)
    }  # one example each
    assert not found, "package cycles:\n" + "\n".join(
        " <-> ".join(c)
        + ": "
        + "; ".join(f"{a} -> {b} ({where[(a, b)]})" for a in c for b in c if (a, b) in where)
        for c in found
    )


def test_no_module_imports_itself_through_another():
    modules = {_module(p) for p in (REPO / "vopt").rglob("*.py") if "node_modules" not in p.parts}
    edges = []
    for a, b, _ in import_edges():
        # `from vopt.x import name` names a module when name is one, else the module it is in
        target = b if b in modules else b.rpartition(".")[0]
        if target in modules and target != a and not a.startswith(target + "."):
            edges.append((a, target))
    found = [c for c in cycles(edges) if not all(m == _package(m) for m in c)]
    assert not found, "module cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_scan_finds_a_cycle():
    assert cycles([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]) == [["a", "b", "c"]]
