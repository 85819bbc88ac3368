"""EfficientNet-Lite0 (Google's weights) on held-out labelled ImageNet photos: what int8 costs on `cpu`
(ONNX Runtime) and `openvino`, for the common tools' defaults, NNCF's accuracy-controlled quantization, and
vopt with and without `quantize.search`; and on `tflite` (LiteRT), vopt's fp32 and int8 artifacts.

    PYTHONPATH=$PWD python benchmarks/real_model.py [--only cpu|openvino] [--work DIR] [--budget 900]
    PYTHONPATH=$PWD .venv-tflite/bin/python benchmarks/real_model.py --only tflite   # make test-tflite's venv

The 500 photos split by a hash of the name: 128 calibration, 150 check (what vopt's gates and NNCF's
validation function see), 222 held out (what the table reports). Every path calibrates on the same 128
images. Speed: batch 1, 2 threads, all models of one runtime timed in interleaved rounds with its fp32 model
(ratios are the figures to trust on a shared machine). OpenVINO int8 models run at the plugin's default
precision hint (as deployed; bf16 for what stays float on this CPU); the fp32 baseline pins f32."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _models as M  # noqa: E402
from benchmarks._build import run_build  # noqa: E402

THREADS = 2


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


# -- runners --------------------------------------------------------------------------------------
def ort_run(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.log_severity_level = 3
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return lambda x: s.run(None, {name: x})[0]


def ov_run(path: Path, hint: str | None = None):
    import openvino as ov

    core = ov.Core()
    cfg: dict[str, Any] = {"INFERENCE_NUM_THREADS": THREADS, "PERFORMANCE_HINT": "LATENCY"}
    if hint:
        cfg["INFERENCE_PRECISION_HINT"] = hint
    model = core.read_model(str(path / "model.xml") if path.is_dir() else str(path))
    req = core.compile_model(model, "CPU", cfg).create_infer_request()
    return lambda x: np.array(req.infer({0: x})[0])


def litert_run(path: Path):
    from vopt.runtimes.litert import runner

    r = runner(path, ["input"], ["logits"], threads=THREADS)
    return lambda x: r.run({"input": x})["logits"]


def torch_run():
    import torch

    torch.set_num_threads(THREADS)
    model = M.torch_model()

    def run(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return run


def outputs(run, x: np.ndarray) -> np.ndarray:
    return np.concatenate([run(x[i : i + 1]) for i in range(len(x))])


# -- the tools' own paths ----------------------------------------------------------------------------
def ort_static(float_pre: Path, out: Path, calib: np.ndarray, per_channel: bool) -> Path:
    """quantize_static with its defaults (MinMax, QDQ, u8 activations, s8 weights). Ranges are collected in
    chunks and merged (the same min/max as one pass: ORT's calibrator otherwise holds every intermediate
    output of all 128 images, 7 GB here), then handed to quantize_static as its calibration cache."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import CalibrationDataReader, create_calibrator, save_tensors_data

    class Reader(CalibrationDataReader):
        def __init__(self, part):
            self.it = iter([{"input": part[i : i + 1]} for i in range(len(part))])

        def get_next(self):
            return next(self.it, None)

    cache = out.with_suffix(".ranges.json")
    cal = create_calibrator(float_pre, None, augmented_model_path=str(out.with_suffix(".aug.onnx")))
    for i in range(0, len(calib), 16):
        cal.collect_data(Reader(calib[i : i + 16]))
    save_tensors_data(cal.compute_data(), cache)
    quantize_static(
        str(float_pre),
        str(out),
        None,
        quant_format=QuantFormat.QDQ,
        per_channel=per_channel,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibration_cache_path=str(cache),
    )
    return out


def nncf_default(onnx_path: Path, out: Path, calib: np.ndarray) -> Path:
    import nncf
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    q = nncf.quantize(
        model, nncf.Dataset([calib[i : i + 1] for i in range(len(calib))]), subset_size=len(calib)
    )
    out.mkdir(parents=True, exist_ok=True)
    ov.save_model(q, str(out / "model.xml"), compress_to_fp16=False)
    return out


def nncf_accuracy_control(
    onnx_path: Path, out: Path, calib: np.ndarray, check: tuple[np.ndarray, np.ndarray]
) -> Path:
    import nncf
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    xs, ys = check

    def validate(compiled, items) -> float:
        right = n = 0
        for x, y in items:
            right += int(np.argmax(compiled(x)[0]) == y)
            n += 1
        return right / n

    q = nncf.quantize_with_accuracy_control(
        model,
        nncf.Dataset([calib[i : i + 1] for i in range(len(calib))]),
        nncf.Dataset([(xs[i : i + 1], int(ys[i])) for i in range(len(xs))]),
        validate,
        max_drop=0.003,
        drop_type=nncf.DropType.ABSOLUTE,
        subset_size=len(calib),
    )
    out.mkdir(parents=True, exist_ok=True)
    ov.save_model(q, str(out / "model.xml"), compress_to_fp16=False)
    return out


# -- vopt --------------------------------------------------------------------------------------------
def vopt_build(
    work: Path,
    parts: dict[str, Path],
    target: str,
    search: bool,
    budget: float,
    methods: list[str] | None = None,
    precision: str = "int8",
    gates: dict[str, str] | None = None,
    max_float: float | None = None,
    options: dict[str, Any] | None = None,
    bridge: int = 0,
) -> tuple[Path, float, dict]:
    import yaml

    name = f"effl0-{target}-{precision}-{'search' if search else 'default'}"
    q: dict[str, Any] | None = {
        "precision": "int8",
        "calibration": {"data": str(parts["calibration"]), "samples": M.SPLIT["calibration"]},
        "check": {"data": str(parts["check"]), "samples": M.SPLIT["check"], "benchmark": False},
    }
    if search:
        q["gates"] = gates or {"top1_agreement": ">=0.99"}
        q["search"] = {"budget_s": budget, **({"methods": methods} if methods else {})}
        if bridge:
            q["search"]["bridge"] = bridge
        if max_float is not None:
            q["max_float_fraction"] = max_float
        if options:
            q["options"] = options
    if precision != "int8":
        q = None
    recipe = {
        "name": name,
        "model": {
            "source": "python",
            "arch": M.ARCH,
            "family": "efficientnet",
            "input": {"shape": [1, 3, 224, 224]},
        },
        "preprocess": {k: M.PREPROCESS[k] for k in ("resize", "mean", "std", "scale")},
        "export": {"opset": 17},
        "quantize": q,
        "compile": {"target": target, **({"precision": "fp32"} if target == "tflite" else {})},
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    out = work / f"out-{name}"
    res, wall = run_build(path, out, work / f"cache-{name}", flags=["--no-cache"])
    if res.returncode not in (0,):
        print(res.stderr[-3000:], file=sys.stderr)
    manifest = json.loads(res.stdout) if res.stdout.strip().startswith("{") else {}
    step = next((s for s in manifest.get("steps", []) if s.get("stage") == "quantize"), {})
    suffix = {"openvino": "model.xml", "tflite": "*.tflite"}.get(target, "*.onnx")
    art = next(iter(sorted(out.rglob(suffix))), None)
    if art is not None and art.name == "model.xml":
        art = art.parent
    return art, wall, {"rc": res.returncode, "report": step.get("report", {})}


# -- measuring ---------------------------------------------------------------------------------------
def measure(name: str, run, data: dict[str, Any]) -> dict[str, Any]:
    out = outputs(run, data["x"])
    ref = data["ref"]
    agree = int(np.sum(out.argmax(1) == ref.argmax(1)))
    right = int(np.sum(out.argmax(1) == data["y"]))
    n = len(out)
    lo, hi = wilson(agree, n)
    return {
        "path": name,
        "top1": right / n,
        "agree": agree / n,
        "agree_ci": (lo, hi),
        "n": n,
        "drop_pts": 100 * (data["ref_top1"] - right / n),
    }


def speed(runs: dict[str, Any], base: str) -> dict[str, dict[str, float]]:
    from vopt.bench.timing import interleaved

    x = np.zeros((1, 3, 224, 224), np.float32)
    t = interleaved({k: (lambda r=r: r(x)) for k, r in runs.items()}, rounds=7, per_round=10, warmup=3)
    ips = {k: 1e3 / v["p50_ms"] for k, v in t.items()}
    return {k: {"img_s": round(v, 1), "ratio": round(v / ips[base], 2)} for k, v in ips.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["cpu", "openvino", "tflite"])
    ap.add_argument("--work", type=Path)
    ap.add_argument("--budget", type=float, default=900)
    ap.add_argument("--methods", nargs="*", help="calibration methods the search tries (default: all three)")
    ap.add_argument("--gate", type=float, default=0.99, help="the search's top1_agreement gate on the check")
    ap.add_argument("--vopt-only", action="store_true", help="skip the other tools' rows (fp32 stays)")
    ap.add_argument(
        "--gate-drop",
        type=float,
        help="gate the search on top1_drop <= this (points), as NNCF's control does",
    )
    ap.add_argument(
        "--gate-cosine",
        type=float,
        help="gate the search on centered_cosine >= this: a continuous metric, which 150 photos resolve",
    )
    ap.add_argument("--max-float", type=float, help="quantize.max_float_fraction for the search")
    ap.add_argument("--bridge", type=int, default=0, help="quantize.search.bridge for the search")
    ap.add_argument(
        "--bias-correction",
        choices=["fast", "full"],
        help="quantize.options.bias_correction of the openvino search's recipe (NNCF's; fast by default)",
    )
    args = ap.parse_args()
    # NNCF's accuracy control's criterion (a top-1 drop in points on the labelled check photos), the output's
    # centered cosine, or agreement with fp32
    search_gates = (
        {"top1_drop": f"<={args.gate_drop}"}
        if args.gate_drop is not None
        else {"centered_cosine": f">={args.gate_cosine}"}
        if args.gate_cosine is not None
        else {"top1_agreement": f">={args.gate}"}
    )
    why = M.why_unavailable()
    if why:
        sys.exit(f"skipped: {why}")
    work = args.work or Path(tempfile.mkdtemp(prefix="vopt-real-"))
    work.mkdir(parents=True, exist_ok=True)
    parts = M.split(M.samples_dir(), work / "split")
    onnx_path = work / "effl0.onnx"
    if not onnx_path.exists():
        M.export_onnx(onnx_path)
    arrays = {p: M.load_images(parts[p]) for p in ("calibration", "check", "eval")}
    calib = arrays["calibration"][0]
    t_run = torch_run()
    ex, ey = arrays["eval"]
    ref = outputs(t_run, ex)
    data = {"x": ex, "y": ey, "ref": ref, "ref_top1": float(np.mean(ref.argmax(1) == ey))}
    rows: list[dict[str, Any]] = [
        {**measure("PyTorch fp32", t_run, data), "wall_s": None, "runtime": "torch"}
    ]
    targets = [args.only] if args.only else ["cpu", "openvino"]
    float_pre = work / "effl0_pre.onnx"
    if "cpu" in targets and not float_pre.exists():
        from onnxruntime.quantization import quant_pre_process

        quant_pre_process(str(onnx_path), str(float_pre))
    for target in targets:
        built: dict[str, tuple[Path, float | None, dict]] = {}
        failed: list[dict[str, Any]] = []  # builds that left no artifact: listed after the measured rows
        if target == "cpu":
            built["ORT fp32"] = (float_pre, None, {})
            for label, pc in (
                ("ORT quantize_static (default, per-tensor)", False),
                ("ORT quantize_static(per_channel=True)", True),
            )[: 0 if args.vopt_only else 2]:
                t = time.monotonic()
                p = ort_static(float_pre, work / f"qs_{int(pc)}.onnx", calib, pc)
                built[label] = (p, time.monotonic() - t, {})
        elif target == "tflite":
            # LiteRT's own fp32 conversion (litert-torch, through vopt) is the baseline; no search for LiteRT
            art, wall, info = vopt_build(work, parts, target, False, args.budget, precision="fp32")
            built["LiteRT fp32 (litert-torch)"] = (art, wall, info)
        else:
            built["OpenVINO fp32 (f32 hint)"] = (onnx_path, None, {})
        if target == "openvino" and not args.vopt_only:
            t = time.monotonic()
            built["nncf.quantize (default)"] = (
                nncf_default(onnx_path, work / "nncf_default", calib),
                time.monotonic() - t,
                {},
            )
            t = time.monotonic()
            built["nncf.quantize_with_accuracy_control (max_drop 0.003)"] = (
                nncf_accuracy_control(onnx_path, work / "nncf_ac", calib, arrays["check"]),
                time.monotonic() - t,
                {},
            )
        for search in (False, True) if target != "tflite" else (False,):
            art, wall, info = vopt_build(
                work,
                parts,
                target,
                search,
                args.budget,
                args.methods,
                gates=search_gates,
                max_float=args.max_float,
                options={"bias_correction": args.bias_correction}
                if args.bias_correction and target == "openvino"
                else None,
                bridge=args.bridge,
            )
            gate = ", ".join(f"{k} {v[:2]} {v[2:]}" for k, v in search_gates.items())
            label = f"vopt {target} int8" + (f" + quantize.search (gate {gate})" if search else " (default)")
            if search and args.bias_correction and target == "openvino":
                label += f" with {args.bias_correction} bias correction"
            if search and args.bridge:
                label += f", bridge {args.bridge}"
            if art is not None:
                built[label] = (art, wall, info)
            else:
                failed.append(
                    {"path": label, "runtime": target, "error": f"build exit {info['rc']}", "wall_s": wall}
                )
        runs = {}
        for label, (p, _, _) in built.items():
            if target == "cpu":
                runs[label] = ort_run(p)
            elif target == "tflite":
                runs[label] = litert_run(p)
            else:
                runs[label] = ov_run(p, "f32" if "fp32" in label else None)
        base = next(iter(runs))
        sp = speed(runs, base)
        for label, (_p, wall, info) in built.items():
            row = {**measure(label, runs[label], data), "wall_s": wall, "runtime": target, **sp[label]}
            rep = info.get("report", {}) if info else {}
            if rep.get("search"):
                s = rep["search"]
                row["search"] = {
                    k: s.get(k)
                    for k in (
                        "converged",
                        "value_before",
                        "value_after",
                        "changed_settings",
                        "changes",
                        "layers",
                        "elapsed_s",
                        "speed_vs_all_int8",
                        "bridge",
                    )
                }
            if info:
                row["rc"] = info.get("rc")
            rows.append(row)
            print(json.dumps(row, default=str), flush=True)
        rows += failed
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    (work / "real_model.json").write_text(json.dumps(result, indent=1, default=str))
    print(table(result))


def table(result: dict[str, Any]) -> str:
    lines = [
        f"EfficientNet-Lite0, {result['rows'][0]['n']} held-out photos, {result['date']}",
        "",
        "| path | runtime | top-1 | drop (pts) | agreement with fp32 [95% CI] | img/s | × fp32 | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['path']} | {r['runtime']} | {r['error']} | | | | | {r['wall_s']:.0f} |")
            continue
        lo, hi = r["agree_ci"]
        wall = f"{r['wall_s']:.0f}" if r.get("wall_s") else "—"
        sp = f"{r['img_s']} | {r['ratio']:.2f}" if "img_s" in r else "— | —"
        lines.append(
            f"| {r['path']} | {r['runtime']} | {100 * r['top1']:.1f}% | {r['drop_pts']:+.1f} | "
            f"{100 * r['agree']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] | {sp} | {wall} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
