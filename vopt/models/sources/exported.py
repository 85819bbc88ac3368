"""`exported`: a torch.export program (.pt2, from torch.export.save). A fixed graph, like TorchScript.

A .pt2 file is data to vopt unless the recipe says `trust: true`, but torch.export.load runs code from it in
three places: it unpickles sample inputs and some weights or constants (falling back to
`torch.load(weights_only=False)` when the safe loader refuses them), it evaluates every symbolic shape
expression with `sympy.sympify` (Python's `eval`), and a graph node may call any callable reachable from
`torch.*` by name (`torch.os.system`). So without trust a file is loaded only when it needs none of that:
its shape expressions use sympy's constructors and literals only (checked before loading), nothing in it is
unpickled beyond tensors (torch.load is held to weights_only while it loads), and every node of the loaded
graph calls an operator (checked before anything runs)."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vopt.errors import BuildError, RecipeError, first_line
from vopt.models.sources.base import LoadedModel, Source
from vopt.models.sources.torchscript import _file, load_fixed_graph

TRUST_HINT = "set `model.trust: true` if you trust this file to run code"


class ExportedSource(Source):
    name = "exported"

    def load(self, spec) -> LoadedModel:
        path = _file(spec, "torch.export program (.pt2)")
        try:
            module = load_program(path, trust=spec.trust)
        except Untrusted as exc:
            raise RecipeError(f"model.path: {path.name} {exc}; {TRUST_HINT}") from None
        except Exception as exc:
            raise BuildError(
                f"cannot load torch.export program {path}: {first_line(exc)}", stage="load"
            ) from None
        return load_fixed_graph(spec, path, "torch.export program", "exported", lambda: module)

    def trust_use(self, spec) -> str | None:
        return f"loading {spec.path} as it is (its pickles, shape expressions and graph calls run code)"


class Untrusted(Exception):
    """A file that would run code when loaded, loaded without `trust: true`: the message says why."""


class _Refused(Exception):
    """Raised inside torch.export.load when it would run code from the file."""


def load_program(path: Path, *, trust: bool) -> Any:
    """The program's module. With trust, torch.export.load as is; without, a file that would run code is
    refused (Untrusted, saying why) before any of it runs."""
    import torch

    if trust:
        return torch.export.load(str(path)).module()
    why = refusal(path)
    if why is None:
        refused: list[str] = []
        try:
            with _no_unpickling(refused):
                program = torch.export.load(str(path))
        except Exception:
            if not refused:
                raise
            why = refused[0]
        else:
            why = foreign_calls(program)
            if why is None:
                return program.module()
    raise Untrusted(why)


# sympy names a torch.export shape expression uses (its srepr form), and the keyword arguments they take.
_SYMPY_TEXT = """
    Symbol Dummy Integer Float Rational Add Mul Pow Max Min Abs Mod floor ceiling sqrt Eq Ne Lt Le Gt Ge
    StrictLessThan StrictGreaterThan LessThan GreaterThan Equality Unequality And Or Not Piecewise ITE Tuple
    true false True False oo zoo nan Infinity NegativeInfinity NaN One Zero NegativeOne Half
    IntInfinity NegativeIntInfinity BooleanTrue BooleanFalse
    FloorDiv ModularIndexing Where PythonMod CleanDiv CeilToInt FloorToInt CeilDiv LShift RShift
    PowByNatural FloatPow FloatTrueDiv IntTrueDiv IsNonOverlappingAndDenseIndicator TruncToFloat TruncToInt
    RoundToInt RoundDecimal ToFloat Identity OpaqueUnaryFn_sqrt
    positive negative integer real nonnegative nonpositive finite infinite zero nonzero even odd
    rational commutative extended_real precision"""
_SYMPY_NAMES = frozenset(_SYMPY_TEXT.split())
_SYMBOL = re.compile(r"[a-z]+\d+")  # s0, s77, u1, zuf0: torch's symbol names
_TOKEN = re.compile(
    r"\s+|'[A-Za-z0-9_.+\-]{0,64}'|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|[A-Za-z_]\w*|[-+*/%(),=<>!&|~.]"
)
MAX_EXPR = 100_000


def unsafe_expression(text: str) -> str | None:
    """Why a shape expression could run code through sympify, or None: only sympy constructors, symbol
    names, numbers, operators and short quoted names or numbers."""
    if len(text) > MAX_EXPR:
        return "is too long"
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            return f"has {text[pos : pos + 10]!r}"
        token = m.group()
        if (
            (token[0].isalpha() or token[0] == "_")
            and token not in _SYMPY_NAMES
            and not _SYMBOL.fullmatch(token)
        ):
            return f"names {token!r}"
        pos = m.end()
    return None


def refusal(path: Path) -> str | None:
    """What in the archive would run code on load, read without torch (so a cache hit can ask it too), or
    None. Shape expressions that are not plain sympy and pickled weights or objects are found here; pickled
    sample inputs and graph calls are found while loading (load_program)."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile):
        return None  # not an archive: torch.export.load says what it is
    with archive:
        for info in archive.infolist():
            if not info.filename.endswith(".json") or info.file_size > 1 << 30:
                continue
            try:
                data = json.loads(archive.read(info))
            except (ValueError, OSError, zipfile.BadZipFile):
                continue
            why = _scan(data)
            if why:
                return why
    return None


def _scan(node: Any) -> str | None:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "expr_str" and isinstance(value, str):
                    bad = unsafe_expression(value)
                    if bad:
                        return f"has a shape expression that {bad} (sympy evaluates it as Python)"
                elif key == "use_pickle" and value is True:
                    return "holds pickled weights or constants"
                elif (
                    key == "path_name"
                    and isinstance(value, str)
                    and value.startswith(("custom_obj", "opaque"))
                ):
                    return "holds pickled objects among its constants"
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return None


_PATCH = threading.Lock()


@contextlib.contextmanager
def _no_unpickling(refused: list[str]) -> Iterator[None]:
    """torch.load held to weights_only (torch.export falls back to a full unpickle when the safe loader
    refuses a file: here that fallback fails instead) and no pickle.loads of the archive's objects."""
    import torch
    from torch.export.pt2_archive import _package

    real_load = torch.load
    real_pickle = _package.pickle
    real_obj = getattr(torch._C, "_pickle_load_obj", None)

    def weights_only_load(f: Any, *args: Any, **kwargs: Any) -> Any:
        wanted = kwargs.get("weights_only", True)
        kwargs["weights_only"] = True
        try:
            return real_load(f, *args, **kwargs)
        except Exception as exc:
            if wanted is False:
                named = re.search(r"(?i)unsupported (?:global: )?GLOBAL ([\w.]+)", str(exc))
                what = f"it names {named.group(1)}" if named else type(exc).__name__
                refused.append(f"holds pickled objects beyond tensors ({what}; unpickling runs code)")
                raise _Refused(refused[-1]) from None
            raise

    def refuse(*args: Any, **kwargs: Any) -> Any:
        refused.append("holds pickled objects among its constants")
        raise _Refused(refused[-1])

    class _NoPickle:
        loads = staticmethod(refuse)
        load = staticmethod(refuse)

        def __getattr__(self, name: str) -> Any:
            return getattr(real_pickle, name)

    with _PATCH:
        torch.load = weights_only_load  # type: ignore[assignment]
        _package.pickle = _NoPickle()  # type: ignore[assignment]
        if real_obj is not None:
            torch._C._pickle_load_obj = refuse  # type: ignore[attr-defined]
        try:
            yield
        finally:
            torch.load = real_load  # type: ignore[assignment]
            _package.pickle = real_pickle
            if real_obj is not None:
                torch._C._pickle_load_obj = real_obj  # type: ignore[attr-defined]


def _allowed_functions() -> set[Any]:
    import math
    import operator

    import torch

    names = {
        operator: "getitem add sub mul truediv floordiv mod pow neg pos abs eq ne lt le gt ge and_ or_ xor "
        "not_ invert lshift rshift",
        math: "ceil floor trunc sqrt",
        torch: "sym_int sym_float sym_max sym_min sym_not sym_ite sym_sqrt sym_sum _sym_sqrt",
    }
    return {getattr(mod, n) for mod, text in names.items() for n in text.split() if hasattr(mod, n)}


def foreign_calls(program: Any) -> str | None:
    """Why a loaded program's graph would call something other than an operator, or None. A serialized node
    names its target by a dotted path under `torch`, which reaches more than operators."""
    import torch
    from torch._ops import HigherOrderOperator, OpOverload, OpOverloadPacket

    allowed = _allowed_functions()

    def ok(target: Any) -> bool:
        if isinstance(target, (OpOverload, OpOverloadPacket, HigherOrderOperator)):
            return True
        try:
            return target in allowed
        except TypeError:  # unhashable
            return False

    for module in program.graph_module.modules():
        graph = getattr(module, "graph", None)
        if not isinstance(graph, torch.fx.Graph):
            continue
        for node in graph.nodes:
            if node.op == "call_function" and not ok(node.target):
                return f"calls {_name(node.target)} in its graph, which is not an operator"
            if node.op == "call_method":
                return f"calls the method {node.target!r} by name in its graph"
            for arg in _flat((node.args, node.kwargs)):
                if callable(arg) and not isinstance(arg, (torch.fx.Node, torch.Tensor)) and not ok(arg):
                    return f"passes {_name(arg)} as an argument in its graph"
    return None


def _flat(value: Any) -> Iterator[Any]:
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _flat(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _flat(v)
    else:
        yield value


def _name(target: Any) -> str:
    module = getattr(target, "__module__", None)
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)
    return f"{module}.{name}" if module else str(name)
