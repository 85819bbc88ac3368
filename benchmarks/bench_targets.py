"""One model, every target variant that can run here: build, validate, benchmark, then compare.

    .venv/bin/python benchmarks/bench_targets.py [--variants cpu:fp32,cpu:int8,openvino:fp32,openvino:int8]
        [--model resnet18|resnet50] [--size 224] [--batch-sizes 1,4] [--iterations 20] [--threads 2]
        [--out build/bench-targets]

Each variant is an ordinary vopt recipe (same model, same random weights, same real validation images)
with `validate:` and `benchmark:` sections, built through the normal engine and cache. The script then
prints `vopt compare`'s Markdown table of all of them and writes size_vs_agreement.png with one point per
variant. Variants whose backend is missing, or whose build fails, are listed with the reason and skipped.
Speedups are against PyTorch eager, timed interleaved in the same benchmark step of each build.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = {
    "resnet18": {
        "layer_type": "basic",
        "depths": [2, 2, 2, 2],
        "hidden_sizes": [64, 128, 256, 512],
        "embedding_size": 64,
        "num_labels": 1000,
    },
    "resnet50": {"num_labels": 1000},
}


def recipe(name: str, target: str, precision: str, args: argparse.Namespace) -> dict:
    data = {
        "name": name,
        "model": {
            "source": "hf",
            "id": f"{args.model}-random",
            "family": "resnet",
            "weights": "random",
            "config": MODELS[args.model],
            "input": {"shape": [1, 3, args.size, args.size]},
        },
        "export": {"dynamic_batch": True, "parity_samples": 2},
        "compile": {"target": target},
        "validate": {"samples": args.samples},
        "benchmark": {
            "batch_sizes": args.batch_sizes,
            "warmup": 3,
            "iterations": args.iterations,
            "threads": args.threads,
        },
    }
    if precision != "fp32":
        data["quantize"] = {"precision": precision}
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="cpu:fp32,cpu:int8,openvino:fp32,openvino:int8")
    ap.add_argument("--model", choices=sorted(MODELS), default="resnet18")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch-sizes", default="1,4")
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=16, help="validation images")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "bench-targets")
    args = ap.parse_args()
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import yaml

    from vopt.errors import VoptError
    from vopt.pipeline.manifest import read_manifest
    from vopt.pipeline.runner import build
    from vopt.recipe.resolve import load_recipe
    from vopt.registry import get_target
    from vopt.report.compare import compare_markdown, compare_rows
    from vopt.report.plots import size_vs_agreement

    args.out.mkdir(parents=True, exist_ok=True)
    built: list[tuple[str, dict]] = []
    for variant in args.variants.split(","):
        target, _, precision = variant.partition(":")
        precision = precision or "fp32"
        name = f"{args.model}-{target}-{precision}"
        ok, why = get_target(target).available()
        if not ok:
            print(f"skip {name}: {why}", file=sys.stderr)
            continue
        path = args.out / f"{name}.yaml"
        path.write_text(yaml.safe_dump(recipe(name, target, precision, args), sort_keys=False))
        print(f"build {name} ...", file=sys.stderr, flush=True)
        try:
            result = build(load_recipe(path), args.out)
        except VoptError as exc:
            print(f"skip {name}: {exc.message}", file=sys.stderr)
            continue
        built.append((str(result.out_dir), read_manifest(result.out_dir)))
    if not built:
        sys.exit("nothing was built")
    rows = compare_rows(built)
    print(compare_markdown(rows), end="")
    points = [
        (f"{r['target']} {r['precision']}", float(r["size_bytes"]), r["agreement"])
        for r in rows
        if r["size_bytes"] and r["agreement"] is not None
    ]
    png = size_vs_agreement(
        points, rows[0]["agreement_metric"] or "agreement", f"{args.model}: size vs agreement"
    )
    if png:
        (args.out / "size_vs_agreement.png").write_bytes(png)
        print(f"\nplot: {args.out / 'size_vs_agreement.png'}", file=sys.stderr)


if __name__ == "__main__":
    main()
