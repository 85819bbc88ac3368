"""When a runtime rejects a whole graph (QNN finalize, OpenVINO convert/compile, the browser), name the nodes.

Two routes, cheapest first:
- **The message names them.** A converter lists the op types it has no rule for (OpenVINO: "No conversion
  rule found for operations: Bernoulli-17, com.microsoft.Inverse"), and ONNX Runtime quotes the node
  ("node with name 'x'", "Name:'x'"). Those are matched against the graph (`named_in_error`).

- **Bisection**, when the message names nothing (`QNN_COMMON_ERROR_MEM_ALLOC` at graph finalization).
  First the model's settings alone (one Identity node) are offered: when they fail, no node is to blame.
  Then prefixes of the graph in topological order, cut out with onnx.utils.Extractor; the shortest
  failing prefix ends at the culprit, and the shortest failing window ending there is the construct (e.g.
  ConvNeXtV2's GRN: ReduceL2, ReduceMean, Add, Div). Each try builds one session on a sub-graph, so about
  2*log2(nodes) tries in all."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vopt.errors import first_line

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


@dataclass
class Diagnosis:
    nodes: list[str]  # the failing window, QDQ nodes left out
    op_types: list[str]
    error: str  # the runtime's message for the window alone
    tries: int
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return _describe(list(zip(self.nodes, self.op_types, strict=True)))


def _first_line(exc: BaseException) -> str:
    return first_line(exc)


def bisect_failure(
    model_path: str | Path,
    loads: Callable[[Path], None],
    *,
    workdir: str | Path | None = None,
    max_tries: int = 40,
    max_seconds: float = 300.0,
) -> Diagnosis | None:
    """`loads(path)` raises when the runtime rejects the model at `path`. Returns the smallest window of nodes
    found that fails alone, or None when no sub-graph reproduces the failure (it needs the whole graph)."""
    import onnx
    from onnx.utils import Extractor

    model = onnx.load(str(model_path))
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    graph_inputs = [i.name for i in graph.input if i.name not in initializers]
    graph_outputs = {o.name for o in graph.output}
    # Only nodes downstream of the graph inputs are cut points: weight DequantizeLinear and Constant nodes
    # (all first in a QDQ graph) come along with whichever sub-graph uses them.
    live = set(graph_inputs)
    nodes = []
    for n in graph.node:
        if any(i in live for i in n.input):
            nodes.append(n)
            live.update(o for o in n.output if o)
    _fill_qdq_types(model)
    extractor = Extractor(model)
    tries = 0
    deadline = time.monotonic() + max_seconds

    def boundary(lo: int, hi: int) -> list[str]:
        inside = {o for n in nodes[lo:hi] for o in n.output if o}
        later = {i for n in nodes[hi:] for i in n.input} | graph_outputs
        return sorted(t for t in inside if t in later)

    def entering(lo: int, hi: int) -> list[str]:
        inside = {o for n in nodes[lo:hi] for o in n.output if o}
        return sorted({i for n in nodes[lo:hi] for i in n.input if i in live and i not in inside})

    def fails(lo: int, hi: int) -> str | None:
        nonlocal tries
        outs = boundary(lo, hi)
        ins = graph_inputs if lo == 0 else entering(lo, hi)
        if not outs:
            return None
        tries += 1
        try:
            sub = extractor.extract_model(ins, outs)
        except Exception:  # noqa: BLE001 - a window the extractor cannot cut is treated as passing
            return None
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            path = Path(tmp) / "sub.onnx"
            onnx.save(sub, str(path))
            try:
                loads(path)
            except Exception as exc:  # noqa: BLE001 - the runtime's rejection is the signal
                return _first_line(exc)
        return None

    # 0. the model's settings alone (IR version, opsets, session options), on a graph with one Identity: when
    # that fails too, no node is to blame, and an empty window says so
    tries += 1
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        probe = Path(tmp) / "settings.onnx"
        onnx.save(_settings_only(model, graph_inputs[0]), str(probe))
        try:
            loads(probe)
        except Exception as exc:  # noqa: BLE001 - the runtime's rejection is the signal
            return Diagnosis([], [], _first_line(exc), tries)
    # 1. the shortest failing prefix [0, hi)
    lo, hi = 0, len(nodes)
    while hi - lo > 1 and tries < max_tries and time.monotonic() < deadline:
        mid = (lo + hi) // 2
        if fails(0, mid):
            hi = mid
        else:
            lo = mid
    error = fails(0, hi)
    if error is None:
        return None
    # 2. the shortest failing window [start, hi) that ends there
    a, b = 0, hi - 1  # window [a, hi) fails; [b+1, hi) is not known to
    window_error = error
    while b - a > 0 and tries < max_tries and time.monotonic() < deadline:
        mid = (a + b + 1) // 2
        err = fails(mid, hi)
        if err:
            a, window_error = mid, err
        else:
            b = mid - 1
    culprit = [n for n in nodes[a:hi] if n.op_type not in QDQ_OPS]
    return Diagnosis(
        [n.name or n.output[0] for n in culprit], [n.op_type for n in culprit], window_error, tries
    )


def _settings_only(model: Any, name: str) -> Any:
    """The model's IR version and opsets around a graph that only passes its first input through."""
    import onnx

    source = next(i for i in model.graph.input if i.name == name)
    out = onnx.ValueInfoProto()
    out.CopyFrom(source)
    out.name = f"{name}_passed"
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.Clear()
    probe.graph.name = "settings_probe"
    probe.graph.input.append(source)
    probe.graph.output.append(out)
    probe.graph.node.append(onnx.helper.make_node("Identity", [name], [out.name], name="settings_probe"))
    return probe


def _fill_qdq_types(model: Any) -> None:
    """Shape inference leaves Q/DQ outputs untyped when they are in the com.microsoft domain (u16 QDQ) and
    for some opset/type mixes; the extractor needs a type for every cut tensor. A Q/DQ output has its input's
    shape, with the zero point's type (Q) or float (DQ)."""
    import onnx

    model.graph.ClearField("value_info")
    inferred = onnx.shape_inference.infer_shapes(model)
    known = {v.name: v for v in (*inferred.graph.value_info, *model.graph.input, *model.graph.output)}
    inits = {i.name: i for i in model.graph.initializer}
    consts = {
        n.output[0]: n.attribute[0].t for n in model.graph.node if n.op_type == "Constant" and n.attribute
    }
    for node in model.graph.node:
        if node.op_type not in QDQ_OPS or node.output[0] in known or node.input[0] not in known:
            continue
        src = known[node.input[0]].type.tensor_type
        if node.op_type == "DequantizeLinear":
            elem = onnx.TensorProto.FLOAT
        else:
            zp = node.input[2] if len(node.input) > 2 else ""
            tensor = inits.get(zp) or consts.get(zp)
            elem = tensor.data_type if tensor is not None else onnx.TensorProto.UINT8
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in src.shape.dim]
        known[node.output[0]] = onnx.helper.make_tensor_value_info(node.output[0], elem, dims)
    extra = [
        v
        for name, v in known.items()
        if name not in {i.name for i in model.graph.input}
        and name not in {o.name for o in model.graph.output}
    ]
    model.graph.value_info.extend(extra)


@contextlib.contextmanager
def native_output_to(log: Path) -> Iterator[Path]:
    """Send what native libraries print (ORT's coloured error lines, QNN's banner) to `log`, not the terminal:
    they write to file descriptors 1 and 2 directly, so the descriptors are redirected, then restored."""
    log.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with log.open("ab") as fh:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(fh.fileno(), 1)
            os.dup2(fh.fileno(), 2)
            yield log
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def log_path(name: str) -> Path:
    """Where a build's native log lines go: <cache>/logs/<name>.log (the build directory may not exist
    yet)."""
    from vopt.core.cache import default_cache_dir

    return default_cache_dir() / "logs" / f"{name}.log"


def float_islands_hint(runtime: str) -> Callable[[str], str]:
    """The hint for a quantizing target: keep the construct in float, so the runtime compiles it apart."""
    return lambda names: (
        f"keep them in float and rebuild ({runtime} then compiles the float nodes apart from the quantized "
        f"ones): quantize: {{exclude: {{nodes: [{names}]}}}}"
    )


def named_in_error(message: str, model_path: str | Path) -> list[tuple[str, str]]:
    """(node name, op type) for the nodes a runtime's message names: the op types a converter has no rule for,
    or nodes quoted by name. Empty when the message names nothing in this graph."""
    import re

    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph

    def kind(node: Any) -> str:
        return f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type

    found: dict[str, str] = {}
    listed = re.search(r"conversion rule found for operations?:\s*([^\n]+)", message)
    if listed:
        # "Bernoulli-17, com.microsoft.Inverse": op types, with the opset a version suffix
        types = {re.sub(r"-\d+$", "", t.strip()) for t in listed.group(1).split(",") if t.strip()}
        found.update((n.name or n.output[0], kind(n)) for n in graph.node if kind(n) in types)
    quoted = set(re.findall(r"(?:node with name|[Nn]ame:)\s*'([^']+)'", message))
    found.update((n.name, kind(n)) for n in graph.node if n.name and n.name in quoted)
    return list(found.items())


def rejected_graph_error(
    runtime: str,
    model_path: Path,
    exc: BaseException,
    loads: Callable[[Path], None],
    *,
    stage: str = "compile",
    log: Path | None = None,
    workdir: Path | None = None,
    hint_for: Callable[[str], str] | None = None,
    named_hint: str | None = None,
) -> Any:
    """The BuildError for a runtime that rejected the whole graph: the runtime's most telling line, the nodes
    that cause it (named by the message, else bisected through `loads`), and `hint_for(globs)`: by default
    the exclusion that keeps them in float so the rest compiles. `named_hint` is the hint when the message
    itself named the nodes (an op the runtime cannot take at all: no float island helps)."""
    from vopt.errors import BuildError

    first = _telling_line(exc)
    named = named_in_error(str(exc), model_path)
    if named:
        globs = exclusion_globs([n for n, _ in named], model_path)
        lines = [
            _describe(named),
            "the same nodes in the graph: " + ", ".join(f"{g} ({n} nodes)" for g, n in globs.items()),
        ]
        if log:
            lines.append(f"native log: {log}")
        return BuildError(f"{runtime} rejected the graph: {first}", stage=stage, lines=lines, hint=named_hint)
    hint_for = hint_for or float_islands_hint(runtime)
    with native_output_to(log) if log else contextlib.nullcontext():
        found = bisect_failure(model_path, loads, workdir=workdir)
    lines: list[str] = []
    hint = None
    if found is not None and not found.nodes:
        found = None  # even an empty window fails: the session setup is at fault, not a node
        lines.append(
            "the runtime refuses the model before any node is placed: the model's IR version or opset, or a "
            "session or provider option" + (f" ({_native_error(log)})" if log and _native_error(log) else "")
        )
    elif found is None:
        lines.append("no part of the graph fails alone: the whole graph is needed to reproduce it")
    else:
        lines.append(found.describe())
        lines.append(f"those nodes alone fail with: {found.error}")
        # The window starts with the node that computes the construct's input: without it the rest does not
        # fail alone (ConvNeXtV2: the Gelu before each GRN). The construct is the rest, and that is what to
        # exclude.
        construct = found.nodes[1:] if len(found.nodes) > 1 else found.nodes
        if len(found.nodes) > 1:
            lines.append(
                f"{found.nodes[0]} ({found.op_types[0]}) computes their input; the rest is the construct"
            )
        globs = exclusion_globs(construct, model_path)
        lines.append(
            "the same construct in the graph: " + ", ".join(f"{g} ({n} nodes)" for g, n in globs.items())
        )
        hint = hint_for(", ".join(f'"{g}"' for g in globs))
    if log:
        lines.append(f"native log: {log}")
    return BuildError(f"{runtime} rejected the graph: {first}", stage=stage, lines=lines, hint=hint)


def _describe(named: list[tuple[str, str]]) -> str:
    shown = ", ".join(f"{n} ({t})" for n, t in named[:8])
    more = f" and {len(named) - 8} more" if len(named) > 8 else ""
    return f"{len(named)} node(s) cause it: {shown}{more}"


def _telling_line(exc: BaseException) -> str:
    """The line of a multi-line runtime message that says what failed (OpenVINO's first line is the C++
    check that fired; the summary comes later)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    for line in lines:
        if "conversion rule" in line or "node with name" in line or "Name:'" in line:
            return line.lstrip("- ")[:300]
    return _first_line(exc)


def exclusion_globs(nodes: list[str], model_path: Path) -> dict[str, int]:
    """Globs for the failing nodes that also match the same construct in the other layers (a runtime that
    rejects one GRN block rejects them all): layer indices become `*`, a node's scope its parent `/*`.
    Each glob with the number of nodes it matches in the model. A node with no scope of its own, or whose
    glob would take most of the graph (a flat export: `/model/*` is every node), is named as it is: the
    advice is to keep those nodes in float, not the model."""
    import fnmatch
    import re

    import onnx

    names = [n.name for n in onnx.load(str(model_path), load_external_data=False).graph.node if n.name]
    globs: dict[str, int] = {}
    for node in nodes:
        scope, _, _ = node.rpartition("/")
        pattern = re.sub(r"\d+", "*", f"{scope}/*") if scope.strip("/") else node
        count = sum(fnmatch.fnmatchcase(n, pattern) for n in names)
        if count > max(len(nodes), len(names) // 2):
            pattern, count = node, 1
        globs.setdefault(pattern, count)
    return globs


def _native_error(log: Path) -> str | None:
    """The runtime's first error line in the native log, without colour codes."""
    import re

    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        clean = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
        if "[E:" in clean or " E " in clean:
            return clean.split("] ", 1)[-1][:300]
    return None
