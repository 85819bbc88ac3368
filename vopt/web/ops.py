"""Which ONNX ops onnxruntime-web's WebGPU and WebNN EPs take, and a check of a model against them.

The tables in ops.json come from the operator docs that ship inside the pinned onnxruntime-web
package (node_modules/onnxruntime-web/docs/{webgpu,webnn}-operators.md); they are vendored so a
build can check ops without node_modules. Refresh them after bumping the pin:
    .venv/bin/python -m vopt.web.ops
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TABLE = HERE / "ops.json"
DOCS = HERE / "node_modules" / "onnxruntime-web" / "docs"
# Nodes no EP executes: they only route tensors and vanish when ORT loads the graph.
_FREE = {("ai.onnx", "Constant"), ("ai.onnx", "Identity")}

Ranges = list[tuple[int, int | None]]


def parse_doc(text: str) -> dict[str, dict[str, Ranges]]:
    """domain -> op -> opset ranges, from an onnxruntime-web operator table in markdown."""
    table: dict[str, dict[str, Ranges]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not re.fullmatch(r"[A-Z]\w*", cells[0]):
            continue
        for domain, spec in re.findall(r"([\w.]+)\(([^)]*)\)", cells[1]):
            ranges: Ranges = []
            for part in spec.split(","):
                part = part.strip()
                if m := re.fullmatch(r"(\d+)\+", part):
                    ranges.append((int(m.group(1)), None))
                elif m := re.fullmatch(r"(\d+)-(\d+)", part):
                    ranges.append((int(m.group(1)), int(m.group(2))))
                elif part.isdigit():
                    ranges.append((int(part), int(part)))
            table.setdefault(domain, {})[cells[0]] = ranges
    return table


@functools.cache
def tables() -> dict[str, Any]:
    return json.loads(TABLE.read_text())


def supported(ep: str, domain: str, op: str, opset: int) -> bool:
    ranges = tables()["eps"][ep].get(domain or "ai.onnx", {}).get(op)
    return bool(ranges) and any(lo <= opset and (hi is None or opset <= hi) for lo, hi in ranges)


def check_model(proto: Any, ep: str) -> dict[str, Any]:
    """Ops of the model (main graph) the EP does not take: onnxruntime-web runs those on its CPU (wasm) EP."""
    opsets = {(o.domain or "ai.onnx"): o.version for o in proto.opset_import}
    counts: Counter[str] = Counter()
    fallback: Counter[str] = Counter()
    for node in proto.graph.node:
        domain = node.domain or "ai.onnx"
        name = node.op_type if domain == "ai.onnx" else f"{domain}.{node.op_type}"
        counts[name] += 1
        if (domain, node.op_type) in _FREE:
            continue
        if not supported(ep, domain, node.op_type, opsets.get(domain, 1)):
            fallback[name] += 1
    total = sum(counts.values())
    return {
        "ep": ep,
        "op_table": tables()["source"],
        "nodes": total,
        "op_types": dict(sorted(counts.items())),
        "fallback_ops": dict(sorted(fallback.items())),
        "fallback_nodes": sum(fallback.values()),
        "all_supported": not fallback,
    }


def regenerate() -> dict[str, Any]:
    version = json.loads((DOCS.parent / "package.json").read_text())["version"]
    data = {
        "source": f"onnxruntime-web {version} docs/webgpu-operators.md, docs/webnn-operators.md",
        "eps": {ep: parse_doc((DOCS / f"{ep}-operators.md").read_text()) for ep in ("webgpu", "webnn")},
    }
    lines = [f'{{"source": {json.dumps(data["source"])}, "eps": {{']
    for i, (ep, table) in enumerate(data["eps"].items()):
        lines.append(f" {json.dumps(ep)}: {{")
        for j, (domain, ops) in enumerate(table.items()):
            lines.append(f"  {json.dumps(domain)}: {{")
            rows = [f"   {json.dumps(op)}: {json.dumps(ranges)}" for op, ranges in sorted(ops.items())]
            lines.append(",\n".join(rows))
            lines.append("  }" + ("," if j < len(table) - 1 else ""))
        lines.append(" }" + ("," if i < len(data["eps"]) - 1 else ""))
    lines.append("}}")
    TABLE.write_text("\n".join(lines) + "\n")  # one line per op: reviewable diffs
    return data


if __name__ == "__main__":
    d = regenerate()
    print(
        f"wrote {TABLE}: "
        + ", ".join(f"{ep} {sum(len(v) for v in t.values())} ops" for ep, t in d["eps"].items())
    )
