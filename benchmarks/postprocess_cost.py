"""What detection post-processing in the graph costs, per target that runs here: a tiny DETR built twice by
`vopt build`, with `export.postprocess: true` (boxes, scores, labels from the graph) and without (logits and
pred_boxes, then the same steps in numpy: vopt.models.postprocess.apply). Both are timed in one interleaved
run per runtime, batch 1, on real images.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/postprocess_cost.py [--work DIR]

Random weights: the timings are what the post-processing costs, not a detector's accuracy."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks._build import run_build  # noqa: E402

TARGETS = ("cpu", "openvino", "webgpu")  # webgpu artifacts run on onnxruntime-web's wasm EP here
MAX_DETECTIONS = 100


def build(work: Path, target: str, postprocess: bool) -> dict[str, Any]:
    import yaml

    from tests.conftest import tiny_model

    name = f"detr-{target}-{'post' if postprocess else 'raw'}"
    model = tiny_model("detr")
    model["config"] = {**model["config"], "num_queries": 100}  # DETR's own query count: 100 detections
    recipe = {
        "name": name,
        "model": model,
        "export": {"postprocess": postprocess, "max_detections": MAX_DETECTIONS},
        "compile": {"target": target},
        "validate": {"samples": 4, "default_gates": False},
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    res, _ = run_build(path, work / "out", work / "cache")
    if res.returncode:
        sys.exit(f"{name}: vopt build exit {res.returncode}\n{res.stderr[-2000:]}")
    return json.loads(res.stdout)


def runner(build_dir: Path, target: str):
    """(run(x) -> outputs dict, close) on the runtime the target's artifacts run on here (the build's own
    artifact; 2 threads where the target has a thread setting)."""
    from vopt.bench.source import resolve_source
    from vopt.bench.targets import runner_factory
    from vopt.registry import get_target

    art = resolve_source(build_dir).artifact
    make, _, _ = runner_factory(get_target(target), art, {"target": target}, 2)
    r = make(2)
    name = art.io.inputs[0].name
    return (lambda x: r.run({name: x})), r.close


def timings(run_post, run_raw, x, cfg) -> dict[str, float]:
    from vopt.bench.timing import interleaved
    from vopt.models.postprocess import apply

    calls = {
        "in the graph": lambda: run_post(x),
        "model + numpy": lambda: apply(run_raw(x), cfg),
        "model alone": lambda: run_raw(x),
    }
    return {k: v["p50_ms"] for k, v in interleaved(calls, rounds=7, per_round=10, warmup=3).items()}


def main() -> None:
    from vopt.core.artifact import Preprocess
    from vopt.datasets.images import load_batch

    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="vopt-post-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for target in TARGETS:
        post, raw = build(work, target, True), build(work, target, False)
        cfg = post["artifact"]["meta"]["postprocess"]
        x = load_batch(None, Preprocess(**post["artifact"]["preprocess"]), 1)
        run_post, close_post = runner(work / "out" / post["recipe"]["name"], target)
        run_raw, close_raw = runner(work / "out" / raw["recipe"]["name"], target)
        try:
            ms = timings(run_post, run_raw, x, cfg)
        finally:
            close_post()
            close_raw()
        row = {
            "target": target,
            "runtime": post["validation"]["runtime"],
            "box_agreement": post["validation"]["task_metrics"].get("box_agreement"),
            **{f"{k} ms": round(v, 3) for k, v in ms.items()},
            "in-graph cost ms": round(ms["in the graph"] - ms["model alone"], 3),
            "numpy cost ms": round(ms["model + numpy"] - ms["model alone"], 3),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    keys = list(rows[0])
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")
    (work / "postprocess_cost.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
