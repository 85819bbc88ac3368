"""vopt's YOLO artifacts against Ultralytics' own exports of the same model, one interleaved run (issue 27).

Same trained weights (tests/fixtures/yolo/shapes-yolo11n.pt), same 64 calibration images (a folder both sides
calibrate on: Ultralytics' `data=` yaml points its val split there), same 100 held-out images with labels
(scripts/yolo_shapes.py's held-out split). Artifacts:

- Ultralytics: `export(format="onnx")`, `export(format="onnx", quantize=8, data=...)`,
  `export(format="openvino")`, `export(format="openvino", quantize=8, data=...)`, all `dynamic=True`, raw
  head. `nms=True` cannot run here (Ultralytics' NMSModel calls torchvision.ops.nms, and no CPU torchvision
  exists for torch 2.13), so each is timed and scored as deployed without it: the raw head, then Ultralytics'
  own Python `non_max_suppression`.
- vopt: recipes/yolo-shapes-{cpu,openvino}-int8.yaml (NMS in the graph) and their fp32 builds.

Every artifact is scored on the held-out images at conf 0.001, IoU 0.7, 100 detections per image (Ultralytics'
val settings): box agreement with PyTorch fp32 plus Ultralytics' NMS (same label, IoU >= 0.5, detections
>= 0.25), mAP50-95 and mAP50 against the labels (pycocotools), and the drop from fp32 PyTorch. Speed: images/s
at batch 1 and 8, all artifacts interleaved round by round (ONNX Runtime and OpenVINO, 2 threads each),
Ultralytics' NMS time included. Wall time: each side's export/build from nothing.

Then DETR-R50 (random weights) against YOLO11n and YOLO11s (random weights) at 640x640 on ONNX Runtime CPU,
each with its post-processing in the graph: images/s and the ratio ("3-5x faster" in the guides).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/yolo_vs_ultralytics.py [--work DIR] [--max-load 2.5]

Runs only when the 1-minute load average is below --max-load (waits up to --wait s, then says so)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks._build import run_build  # noqa: E402

CONF, IOU, MAX_DET, AGREE_AT = 0.001, 0.7, 100, 0.25
IMGSZ = 320


def wait_for_quiet(max_load: float, wait_s: float) -> float:
    """The 1-minute load average once below `max_load`, or after `wait_s` (the caller reports it)."""
    deadline = time.time() + wait_s
    while True:
        load = os.getloadavg()[0]
        if load < max_load or time.time() > deadline:
            return load
        print(f"load {load:.2f} >= {max_load}: waiting", file=sys.stderr)
        time.sleep(30)


def cpu_name() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    fields = dict(ln.split(":", 1) for ln in out.splitlines() if ":" in ln)
    return f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} vCPUs"


# -- data ------------------------------------------------------------------------------------------------
def calibration_folder(data: Path, work: Path, n: int = 64) -> Path:
    """The first n training images (and labels) in a folder of their own, Ultralytics' layout; and a data yaml
    whose val split is that folder, so Ultralytics calibrates on exactly these images."""
    root = work / "calib"
    if root.exists():
        shutil.rmtree(root)
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    for img in sorted((data / "images" / "train").glob("*.jpg"))[:n]:
        shutil.copy2(img, root / "images" / "val" / img.name)
        shutil.copy2(
            data / "labels" / "train" / f"{img.stem}.txt", root / "labels" / "val" / f"{img.stem}.txt"
        )
    names = json.loads((data / "heldout.json").read_text())["categories"]
    (root / "calib.yaml").write_text(
        f"path: {root}\ntrain: images/val\nval: images/val\nnames:\n"
        + "".join(f"  {c['id'] - 1}: {c['name']}\n" for c in names)
    )
    return root


def heldout(data: Path) -> tuple[list[Path], np.ndarray, Any]:
    from vopt.core.artifact import Preprocess
    from vopt.datasets.detection_labels import read_yolo_txt
    from vopt.datasets.images import load_image

    files = sorted((data / "images" / "heldout").glob("*.jpg"))
    pre = Preprocess(size=[IMGSZ, IMGSZ], mean=[0, 0, 0], std=[1, 1, 1])
    images = np.stack([load_image(f, pre) for f in files])
    return files, images, read_yolo_txt(files, [IMGSZ, IMGSZ])


# -- the two sides' artifacts ----------------------------------------------------------------------------
def _walls(work: Path) -> dict[str, float]:
    f = work / "walls.json"
    return json.loads(f.read_text()) if f.is_file() else {}


def _record_walls(work: Path, wall: dict[str, float]) -> None:
    (work / "walls.json").write_text(json.dumps({**_walls(work), **wall}, indent=1))


def ultralytics_exports(
    weights: Path, calib: Path, work: Path, reuse: bool = False
) -> tuple[dict[str, Path], dict[str, float]]:
    from vopt.models.ultralytics_compat import import_ultralytics

    import_ultralytics()
    from ultralytics import YOLO

    out, wall = {}, {}
    for name, kw in (
        ("onnx-fp32", {"format": "onnx"}),
        ("onnx-int8", {"format": "onnx", "quantize": 8, "data": str(calib / "calib.yaml")}),
        ("openvino-fp32", {"format": "openvino"}),
        ("openvino-int8", {"format": "openvino", "quantize": 8, "data": str(calib / "calib.yaml")}),
    ):
        folder = work / "ultralytics" / name
        found = sorted(folder.glob("*.onnx")) + sorted(folder.glob("*_openvino_model")) if reuse else []
        if found:  # --reuse: the export an earlier run made, with the wall time it recorded
            out[name], wall[name] = found[0], _walls(work).get(name)
            continue
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        pt = folder / weights.name
        shutil.copy2(weights, pt)
        t = time.perf_counter()
        path = YOLO(str(pt)).export(imgsz=IMGSZ, dynamic=True, batch=1, device="cpu", **kw)
        wall[name] = time.perf_counter() - t
        out[name] = Path(path)
        _record_walls(work, {name: wall[name]})
    return out, wall


def vopt_builds(
    weights: Path, calib: Path, data: Path, work: Path, search: bool = True, reuse: bool = False
) -> tuple[dict[str, Path], dict[str, float]]:
    """recipes/yolo-shapes-{cpu,openvino}-int8 (and their fp32 builds), at Ultralytics' val thresholds, each
    from an empty cache (wall time from nothing)."""
    out, wall = {}, {}
    for target in ("cpu", "openvino"):
        for precision in ("fp32", "int8"):
            name = f"vopt-{target}-{precision}"
            done = work / "vopt" / name / "manifest.json"
            if reuse and done.is_file():  # --reuse: an earlier run's build, with the wall time it recorded
                out[name] = done.parent / json.loads(done.read_text())["artifact"]["file"]
                wall[name] = _walls(work).get(name)
                continue
            sets = [
                f"name={name}",
                f"model.path={weights}",
                f"quantize.calibration.data={calib / 'images' / 'val'}",
                f"quantize.check.data={data / 'images' / 'val'}",
                f"validate.data={data / 'images' / 'heldout'}",
                f"export.score_threshold={CONF}",
                f"export.max_detections={MAX_DET}",
                "benchmark=null",
            ]
            if not search:  # the recipe's int8 as calibrated, without the accuracy-aware search on a miss
                sets.append("quantize.search=null")
            if precision == "fp32":
                sets += ["quantize=null", "compile.precision=fp32"]
            cache = work / "cache" / name
            shutil.rmtree(cache, ignore_errors=True)
            recipe = f"recipes/yolo-shapes-{target}-int8.yaml"
            res, wall[name] = run_build(recipe, work / "vopt", cache, sets, flags=["--keep-going"])
            if res.returncode not in (0, 3):  # 3: a gate failed; the artifact is measured here all the same
                sys.exit(f"{name}: vopt build exit {res.returncode}\n{res.stderr[-3000:]}")
            manifest = json.loads(res.stdout)
            if manifest["artifact"] is None:  # a gate stopped the build before an artifact (quantize's check)
                gates = manifest["gate_failures"]
                failed = "; ".join(f"{g['stage']}: {g['metric']} {g['value']}" for g in gates)
                print(f"{name}: no artifact ({failed}); left out of the table", file=sys.stderr)
                continue
            out[name] = work / "vopt" / name / manifest["artifact"]["file"]
            _record_walls(work, {name: wall[name]})
    return out, wall


# -- running and scoring ---------------------------------------------------------------------------------
def session(path: Path) -> tuple[Any, str, int | None]:
    """(run(images) -> raw outputs list, runtime, fixed batch or None) on ONNX Runtime or OpenVINO, 2
    threads, fp32 inference. An artifact with a fixed batch (vopt's int8: the QDQ schemes pin it) runs a
    larger batch as several calls at its own."""
    if path.suffix == ".onnx" or (
        path.is_dir() and list(path.glob("*.onnx")) and not list(path.glob("*.xml"))
    ):
        import onnxruntime as ort

        f = path if path.suffix == ".onnx" else next(path.glob("*.onnx"))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        sess = ort.InferenceSession(str(f), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        dim = sess.get_inputs()[0].shape[0]
        return _chunked(lambda x: sess.run(None, {name: x}), dim), "onnxruntime-cpu", _fixed(dim)
    import openvino as ov

    xml = path if path.suffix == ".xml" else next(path.glob("*.xml"))
    compiled = ov.Core().compile_model(
        str(xml), "CPU", {"INFERENCE_NUM_THREADS": 2, "INFERENCE_PRECISION_HINT": "f32"}
    )
    request = compiled.create_infer_request()
    dim = compiled.inputs[0].get_partial_shape()[0]
    fixed = dim.get_length() if dim.is_static else None

    def run(x: np.ndarray) -> list[np.ndarray]:
        res = request.infer({0: x})
        return [np.asarray(res[o]) for o in compiled.outputs]

    return _chunked(run, fixed), "openvino-cpu", fixed


def _fixed(dim: Any) -> int | None:
    return dim if isinstance(dim, int) else None


def _chunked(run: Any, dim: Any) -> Any:
    batch = _fixed(dim)
    if batch is None:
        return run

    def split(x: np.ndarray) -> list[np.ndarray]:
        if len(x) == batch:
            return run(x)
        parts = [run(x[i : i + batch]) for i in range(0, len(x), batch)]
        return [np.concatenate(outs) for outs in zip(*parts, strict=True)]

    return split


def ultra_nms(raw: np.ndarray) -> list[Any]:
    from vopt.models.nms import reference

    kept = reference(
        raw, {"max_detections": MAX_DET, "score_threshold": CONF, "iou_threshold": IOU, "agnostic": False}
    )
    return _detections(kept)


def _detections(found: dict[str, np.ndarray]) -> list[Any]:
    from vopt.validate.detection import Detections

    return [
        Detections(b[:n].astype(np.float64), lab[:n].astype(np.int64), s[:n].astype(np.float64))
        for b, s, lab, n in zip(
            found["boxes"], found["scores"], found["labels"], found["num_detections"], strict=True
        )
    ]


def detect(run: Any, images: np.ndarray, in_graph: bool) -> list[Any]:
    dets: list[Any] = []
    for i in range(0, len(images), 8):
        outs = run(images[i : i + 8])
        if in_graph:  # boxes, scores, labels, num_detections
            dets += _detections(dict(zip(("boxes", "scores", "labels", "num_detections"), outs, strict=True)))
        else:
            dets += ultra_nms(outs[0])
    return dets


def score(dets: list[Any], ref: list[Any], labels: Any, files: list[Path]) -> dict[str, float]:
    from vopt.validate.detection import Detections, box_agreement
    from vopt.validate.detection_map import coco_map

    def above(ds: list[Any]) -> list[Any]:
        return [
            Detections(
                d.boxes[d.scores >= AGREE_AT], d.labels[d.scores >= AGREE_AT], d.scores[d.scores >= AGREE_AT]
            )
            for d in ds
        ]

    agree = box_agreement(above(ref), above(dets))
    truth = [(labels.boxes[f], labels.classes[f], labels.crowd[f]) for f in files]
    m = coco_map(truth, dets)
    return {
        "box_agreement": agree["box_agreement"],
        "box_mean_iou": agree["box_mean_iou"],
        "missing": agree["missing_detections"],
        "extra": agree["extra_detections"],
        "map50_95": m["map50_95"],
        "map50": m["map50"],
    }


def speed(calls: dict[str, Any], images: np.ndarray, rounds: int) -> dict[str, dict[str, float]]:
    """images/s at batch 1 and 8, every artifact interleaved round by round (Ultralytics' NMS included)."""
    from vopt.bench.timing import interleaved

    out: dict[str, dict[str, float]] = {k: {} for k in calls}
    for batch in (1, 8):
        x = np.ascontiguousarray(images[:batch])
        timed = interleaved(
            {k: (lambda f=f, x=x: f(x)) for k, f in calls.items()},
            rounds=rounds,
            per_round=5 if batch == 1 else 2,
        )
        for k, t in timed.items():
            out[k][f"img_s_b{batch}"] = batch * 1000.0 / t["p50_ms"]
    return out


def compare(
    work: Path, weights: Path, data: Path, rounds: int, search: bool = True, reuse: bool = False
) -> dict[str, Any]:
    import torch

    from vopt.models.ultralytics_compat import import_ultralytics

    files, images, labels = heldout(data)
    calib = work / "calib" if reuse and (work / "calib").is_dir() else calibration_folder(data, work)
    exports, ultra_wall = ultralytics_exports(weights, calib, work, reuse)
    builds, vopt_wall = vopt_builds(weights, calib, data, work, search, reuse)
    import_ultralytics()
    from ultralytics import YOLO

    torch.set_num_threads(2)
    model = YOLO(str(weights)).model.float().eval()
    with torch.no_grad():
        raw = np.concatenate(
            [model(torch.from_numpy(images[i : i + 8]))[0].numpy() for i in range(0, len(images), 8)]
        )
    ref = ultra_nms(raw)
    truth = [(labels.boxes[f], labels.classes[f], labels.crowd[f]) for f in files]
    from vopt.validate.detection_map import coco_map

    ref_map = coco_map(truth, ref)
    rows: dict[str, dict[str, Any]] = {}
    calls: dict[str, Any] = {}
    for name, path in {**{f"ultralytics-{k}": v for k, v in exports.items()}, **builds}.items():
        run, runtime, fixed = session(path)
        in_graph = name.startswith("vopt-")
        dets = detect(run, images, in_graph)
        rows[name] = {
            "runtime": runtime,
            "nms": "in the graph (ONNX NonMaxSuppression)" if in_graph else "Ultralytics' Python NMS",
            **score(dets, ref, labels, files),
            "wall_s": (ultra_wall | vopt_wall).get(name.removeprefix("ultralytics-")),
            "fixed_batch": fixed,
        }
        rows[name]["map50_95_drop"] = 100 * (ref_map["map50_95"] - rows[name]["map50_95"])
        calls[name] = run if in_graph else (lambda x, run=run: ultra_nms(run(x)[0]))
    for name, s in speed(calls, images, rounds).items():
        rows[name].update(s)
    return {"reference": {"pytorch_fp32": ref_map}, "rows": rows}


# -- DETR-R50 vs YOLO11n/s -------------------------------------------------------------------------------
def detr_vs_yolo(work: Path, rounds: int) -> dict[str, Any]:
    import yaml

    recipes = {
        "detr-r50": {
            "extends": [str(REPO / "recipes/families/detr.yaml")],
            "model": {"weights": "random"},
            "export": {"postprocess": True, "max_detections": MAX_DET},
        },
        "yolo11n": {"extends": [str(REPO / "recipes/families/yolo.yaml")], "model": {"id": "yolo11n.yaml"}},
        "yolo11s": {"extends": [str(REPO / "recipes/families/yolo.yaml")], "model": {"id": "yolo11s.yaml"}},
    }
    paths = {}
    for name, r in recipes.items():
        r = {
            **r,
            "name": f"speed-{name}",
            "compile": {"target": "cpu", "optimization": "extended"},
            "quantize": None,
            "validate": None,
        }
        r["model"] = {**r["model"], "input": {"shape": [1, 3, 640, 640]}}
        f = work / f"speed-{name}.yaml"
        f.write_text(yaml.safe_dump(r, sort_keys=False))
        res, _ = run_build(f, work / "speed", work / "cache" / "speed")
        if res.returncode:
            sys.exit(f"{name}: vopt build exit {res.returncode}\n{res.stderr[-3000:]}")
        paths[name] = work / "speed" / f"speed-{name}" / "model.onnx"
    from vopt.bench.timing import interleaved

    x = np.random.default_rng(0).random((1, 3, 640, 640), dtype=np.float32)
    runs = {k: session(p)[0] for k, p in paths.items()}
    timed = interleaved({k: (lambda f=f: f(x)) for k, f in runs.items()}, rounds=rounds, per_round=3)
    img_s = {k: 1000.0 / t["p50_ms"] for k, t in timed.items()}
    return {
        "img_s": img_s,
        "ratio_yolo11n": img_s["yolo11n"] / img_s["detr-r50"],
        "ratio_yolo11s": img_s["yolo11s"] / img_s["detr-r50"],
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Measured {result['date']} on {result['cpu']} (load average {result['load']:.2f} at the start), "
        f"torch {result['versions']['torch']}, onnxruntime {result['versions']['onnxruntime']}, openvino "
        f"{result['versions']['openvino']}, ultralytics {result['versions']['ultralytics']}. Held-out: 100 "
        "images; "
        f"fp32 PyTorch mAP50-95 {100 * result['compare']['reference']['pytorch_fp32']['map50_95']:.1f}%.",
        "",
        "| artifact | runtime | NMS | box agreement | mAP50-95 | drop (pt) | mAP50 | img/s b1 | img/s b8 "
        "| wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["compare"]["rows"].items():
        wall = "n/a" if r["wall_s"] is None else f"{r['wall_s']:.0f}"
        b8 = f"{r['img_s_b8']:.1f}" + (" (8 x b1)" if r["fixed_batch"] == 1 else "")
        lines.append(
            f"| {name} | {r['runtime']} | {r['nms']} | {r['box_agreement']:.3f} | "
            f"{100 * r['map50_95']:.1f} | {r['map50_95_drop']:+.2f} | {100 * r['map50']:.1f} | "
            f"{r['img_s_b1']:.1f} | {b8} | {wall} |"
        )
    if "detr" in result:
        d = result["detr"]
        lines += [
            "",
            "| model (640x640, ONNX Runtime CPU fp32, post-processing in the graph) | img/s | vs DETR-R50 |",
            "|---|---|---|",
        ]
        for k, v in d["img_s"].items():
            lines.append(f"| {k} | {v:.2f} | {v / d['img_s']['detr-r50']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", type=Path, default=REPO / "build" / "yolo-bench")
    p.add_argument("--weights", type=Path, default=REPO / "tests" / "fixtures" / "yolo" / "shapes-yolo11n.pt")
    p.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("VOPT_YOLO_SHAPES", REPO / "datasets" / "yolo-shapes")),
    )
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--max-load", type=float, default=2.5)
    p.add_argument("--wait", type=float, default=1800.0)
    p.add_argument("--skip-detr", action="store_true")
    p.add_argument("--no-search", action="store_true", help="vopt's int8 without the search on a gate miss")
    p.add_argument(
        "--reuse", action="store_true", help="score and time the exports and builds left in --work by a run"
    )
    args = p.parse_args()
    import importlib.metadata as md

    args.work.mkdir(parents=True, exist_ok=True)
    load = wait_for_quiet(args.max_load, args.wait)
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu_name(),
        "load": load,
        "versions": {d: md.version(d) for d in ("torch", "onnxruntime", "openvino", "ultralytics")},
    }
    result["compare"] = compare(
        args.work, args.weights, args.data, args.rounds, not args.no_search, args.reuse
    )
    result["search"] = not args.no_search
    if not args.skip_detr:
        result["detr"] = detr_vs_yolo(args.work, args.rounds)
    result["load_end"] = os.getloadavg()[0]
    (args.work / "result.json").write_text(json.dumps(result, indent=1))
    print(markdown(result))


if __name__ == "__main__":
    main()
