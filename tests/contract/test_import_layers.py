"""vopt's packages form layers (docs/architecture.md): a module imports only from its own layer or a lower
one, lazy imports inside functions included (they are dependencies too, just paid later). So there are no
import cycles between layers, and a lower layer never needs a higher one to be importable or testable."""

from __future__ import annotations

import ast

from tests.conftest import REPO

# Lowest first. A module belongs to the layer of the longest prefix that names it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # The artifact, its cache, the stage context, progress output, errors: what every layer builds on.
    ("foundation", ("vopt", "vopt.errors", "vopt.machine", "vopt.suggest", "vopt.core")),
    ("recipe", ("vopt.recipe", "vopt.registry")),  # the recipe, and the plugin table it is checked against
    ("models", ("vopt.models", "vopt.datasets")),
    ("runtimes", ("vopt.runtimes",)),
    ("formats", ("vopt.formats",)),  # one plugin per artifact format: the runtime that runs it, its files
    ("checks", ("vopt.validate", "vopt.bench", "vopt.profiling", "vopt.estimate")),
    ("quant", ("vopt.quant",)),
    ("targets", ("vopt.targets", "vopt.web")),  # vopt.web: onnxruntime-web's op tables and the browser check
    ("stages", ("vopt.stages",)),
    ("report", ("vopt.report",)),
    # The engine, what checks a recipe's inputs before it runs, and the drivers that run it many times (tune).
    ("engine", ("vopt.pipeline", "vopt.tune")),
    ("cli", ("vopt.cli", "vopt.__main__")),
]

# Upward imports that exist today, each with what removes it. The test fails when one disappears, so the list
# only shrinks: delete the entry in the same change.
KNOWN_UPWARD: dict[tuple[str, str], str] = {
}


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (i, len(p))
    return best[0] if best else None


def imports() -> list[tuple[str, str, str]]:
    """(importer module, imported vopt module, file:line) for every import statement in vopt/, lazy ones
    too."""
    found = []
    for path in sorted((REPO / "vopt").rglob("*.py")):
        rel = path.relative_to(REPO)
        module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(), str(rel))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            ours = [n for n in names if n == "vopt" or n.startswith("vopt.")]
            found += [(module, n, f"{rel}:{node.lineno}") for n in ours]
    return found


def test_every_module_has_a_layer():
    modules = {m for m, _, _ in imports()} | {t for _, t, _ in imports()}
    assert not sorted(m for m in modules if layer_of(m) is None)


def test_no_module_imports_from_a_higher_layer():
    upward = {}
    for module, target, where in imports():
        if layer_of(target) > layer_of(module):  # type: ignore[operator]
            upward.setdefault((module, target), []).append(where)
    new = {k: v for k, v in upward.items() if k not in KNOWN_UPWARD}
    assert not new, "imports from a higher layer (see docs/architecture.md):\n" + "\n".join(
        f"{LAYERS[layer_of(m)][0]} -> {LAYERS[layer_of(t)][0]}: {m} imports {t} ({', '.join(w)})"  # type: ignore[index]
        for (m, t), w in new.items()
    )
    gone = sorted(k for k in KNOWN_UPWARD if k not in upward)
    assert not gone, f"fixed: remove from KNOWN_UPWARD: {gone}"
