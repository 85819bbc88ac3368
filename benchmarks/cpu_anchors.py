"""vopt's best CPU artifacts against what users get today, and against what this CPU can do, in one run.

    .venv/bin/python benchmarks/cpu_anchors.py [--quick] [--models resnet50,vit-b16] [--threads 2]

1. Ceilings: fp32 / bf16 / int8 GEMM throughput (GMAC/s) through ONNX Runtime (MatMul, MatMulInteger u8 x s8),
   OpenVINO (MatMul at f32 and bf16 hints, and a QDQ MatMul that OpenVINO runs in int8) and PyTorch.
2. vopt's artifacts, built through recipes (`recipes/families/*.yaml` + `recipes/targets/cpu.yaml` with int8
   quantize, and `recipes/targets/openvino-int8.yaml`), for ResNet-50 and ViT-B/16 with RANDOM but sane
   weights
   (vopt's random init: kaiming convs, recomputed BatchNorm statistics): speed only, fidelity vs fp32 as a
   sanity
   check (random weights make top-1 meaningless).
3. Anchors on the same exported ONNX and the same calibration images: PyTorch eager, ORT fp32, a naive
   `quantize_static` (defaults, the exported dynamic-batch model, no pre-processing), OpenVINO with default
   hints (bf16 on AMX CPUs), and a default `nncf.quantize` (model_type TRANSFORMER for ViT).
4. Per row: img/s at batch 1 (median of interleaved rounds: every row runs in every round, so load from other
   processes hits all alike), the ratio to each anchor, percent of the ceiling for its runtime and precision
   (MACs per image x img/s / ceiling) and centered cosine against ORT fp32.
`--quick` (a few minutes): 16 calibration and 8 evaluation images, 3 rounds of 3 calls.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# MACs per image at 224x224 (ResNet-50: torchvision's count; ViT-B/16: 197 tokens, 12 layers).
MODELS = {
    "resnet50": {
        "family": "recipes/families/resnet.yaml",
        "macs": 4.1e9,
        "config": {"num_labels": 1000},
        "nncf_type": None,
    },
    "vit-b16": {
        "family": "recipes/families/vit.yaml",
        "macs": 17.5e9,
        "config": {"num_labels": 1000},
        "nncf_type": "TRANSFORMER",
    },
}
ANCHORS = (
    "PyTorch eager",
    "ORT fp32",
    "naive quantize_static",
    "OpenVINO default hints",
    "default nncf.quantize",
)


def timed(calls: dict[str, Callable[[], Any]], rounds: int, per_round: int) -> dict[str, float]:
    """Median ms per call of each, interleaved."""
    from vopt.bench.timing import interleaved

    return {
        k: v["p50_ms"] for k, v in interleaved(calls, rounds=rounds, per_round=per_round, warmup=2).items()
    }


# -- 1. ceilings ----------------------------------------------------------------------------------
def gemm_onnx(path: Path, n: int, int8: bool) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if int8:
        w = numpy_helper.from_array(rng.integers(-127, 127, (n, n), dtype=np.int8), "W")
        nodes = [helper.make_node("MatMulInteger", ["A", "W"], ["Y"])]
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    else:
        w = numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32), "W")
        nodes = [helper.make_node("MatMul", ["A", "W"], ["Y"])]
        a_type, y_type = TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "gemm",
        [helper.make_tensor_value_info("A", a_type, [n, n])],
        [helper.make_tensor_value_info("Y", y_type, [n, n])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))


def qdq_gemm_onnx(path: Path, n: int) -> None:
    """A float MatMul between QuantizeLinear/DequantizeLinear pairs: OpenVINO turns it into an int8 MatMul."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.integers(-127, 127, (n, n), dtype=np.int8), "Wq"),
        numpy_helper.from_array(np.array(0.01, np.float32), "ws"),
        numpy_helper.from_array(np.array(0, np.int8), "wz"),
        numpy_helper.from_array(np.array(0.02, np.float32), "as"),
        numpy_helper.from_array(np.array(0, np.uint8), "az"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["A", "as", "az"], ["Aq"]),
        helper.make_node("DequantizeLinear", ["Aq", "as", "az"], ["Ad"]),
        helper.make_node("DequantizeLinear", ["Wq", "ws", "wz"], ["Wd"]),
        helper.make_node("MatMul", ["Ad", "Wd"], ["Y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qgemm",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n, n])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))


def ceilings(work: Path, threads: int, n: int, rounds: int, per_round: int) -> dict[str, float]:
    """GMAC/s per (runtime, precision)."""
    import onnxruntime as ort
    import openvino as ov
    import torch

    gemm_onnx(work / "gemm_f32.onnx", n, int8=False)
    gemm_onnx(work / "gemm_i8.onnx", n, int8=True)
    qdq_gemm_onnx(work / "gemm_qdq.onnx", n)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    s32 = ort.InferenceSession(str(work / "gemm_f32.onnx"), so, providers=["CPUExecutionProvider"])
    s8 = ort.InferenceSession(str(work / "gemm_i8.onnx"), so, providers=["CPUExecutionProvider"])
    a32 = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    a8 = np.random.default_rng(1).integers(0, 255, (n, n), dtype=np.uint8)
    core = ov.Core()

    def ov_compiled(path: Path, hint: str | None):
        config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        if hint:
            config["INFERENCE_PRECISION_HINT"] = hint
        return core.compile_model(core.read_model(str(path)), "CPU", config)

    o32, o16, o8 = (
        ov_compiled(work / "gemm_f32.onnx", "f32"),
        ov_compiled(work / "gemm_f32.onnx", "bf16"),
        ov_compiled(work / "gemm_qdq.onnx", None),
    )
    torch.set_num_threads(threads)
    t32, t16 = torch.from_numpy(a32), torch.from_numpy(a32).bfloat16()
    w32, w16 = torch.randn(n, n), torch.randn(n, n).bfloat16()
    calls = {
        "onnxruntime fp32": lambda: s32.run(None, {"A": a32}),
        "onnxruntime int8": lambda: s8.run(None, {"A": a8}),
        "openvino fp32": lambda: o32(a32),
        "openvino bf16": lambda: o16(a32),
        "openvino int8": lambda: o8(a32),
        "pytorch fp32": lambda: t32 @ w32,
        "pytorch bf16": lambda: t16 @ w16,
    }
    ms = timed(calls, rounds, per_round)
    return {k: n**3 / (v / 1e3) / 1e9 for k, v in ms.items()}


# -- 2. vopt builds ------------------------------------------------------------------------------
def vopt_build(
    name: str,
    model: str,
    target_file: str,
    work: Path,
    calib: int,
    int8_cpu: bool,
    sets: Sequence[str] = (),
) -> tuple[dict, Path, float]:
    """Build through the repo's recipes, with `sets` (`--set` overrides: a `vopt tune` winner's keys) applied;
    returns (manifest, build dir, seconds)."""
    import yaml

    from vopt.core.cache import Cache
    from vopt.pipeline.runner import build
    from vopt.recipe.resolve import load_recipe

    spec = MODELS[model]
    rel = lambda p: os.path.relpath(ROOT / p, work)  # noqa: E731 - extends: paths are relative to the recipe
    recipe: dict[str, Any] = {
        "extends": [rel(spec["family"]), rel(target_file)],
        "name": name,
        "model": {"weights": "random", "config": spec["config"]},
        "export": {"parity_samples": 2},
        "quantize": {
            "precision": "int8",
            "calibration": {"samples": calib, "batch": 8, "seed": 0},
            "check": {"samples": 8, "benchmark": False},
        },
        "validate": None,
    }
    if int8_cpu:
        recipe["compile"] = {"precision": "int8"}
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    t0 = time.perf_counter()
    result = build(load_recipe(path, list(sets)), work / "build", cache=Cache(work / "cache"))
    return result.manifest, result.out_dir, time.perf_counter() - t0


def step_artifact(manifest: dict, work: Path, stage: str) -> Any:
    from vopt.core.cache import Cache

    step = next(s for s in manifest["steps"] if s["stage"] == stage)
    return Cache(work / "cache").get(step["key"]).artifact


# -- 3. one model: rows, anchors, the table ----------------------------------------------------
def run_model(model: str, work: Path, args: argparse.Namespace, ceiling: dict[str, float]) -> list[str]:
    import nncf
    import onnxruntime as ort
    import openvino as ov
    import torch
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    from vopt.datasets.images import iter_batches, list_images, sample_files
    from vopt.models.resolve import OutputWrapper, family_of, load_module
    from vopt.runtimes import openvino as vov
    from vopt.runtimes import ort as vort
    from vopt.validate.metrics import centered_cosine

    spec = MODELS[model]
    m_cpu, dir_cpu, t_cpu = vopt_build(
        f"{model}-cpu-int8", model, "recipes/targets/cpu.yaml", work, args.calib, True, args.cpu_set
    )
    m_ov, dir_ov, t_ov = vopt_build(
        f"{model}-openvino-int8",
        model,
        "recipes/targets/openvino-int8.yaml",
        work,
        args.calib,
        False,
        args.openvino_set,
    )
    float_onnx = Path(step_artifact(m_cpu, work, "export").path)
    cpu_int8 = dir_cpu / m_cpu["artifact"]["file"]
    ov_int8 = dir_ov / m_ov["artifact"]["file"]
    loaded = step_artifact(m_cpu, work, "load")
    module = OutputWrapper.wrap(load_module(loaded), family_of(loaded)).eval()

    pre = loaded.preprocess
    files = list_images(None)
    calib_imgs = np.concatenate(
        list(iter_batches(sample_files(files, args.calib, 0), pre, 8, augment_seed=0))
    )
    eval_imgs = np.concatenate(list(iter_batches(sample_files(files, args.eval, 1), pre, 8, augment_seed=1)))
    name = ort.InferenceSession(str(float_onnx), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calib_imgs[i : i + 1] for i in range(len(calib_imgs)))

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {name: x}

    t0 = time.perf_counter()
    naive = work / f"{model}-naive-qs.onnx"
    quantize_static(str(float_onnx), str(naive), Reader())
    t_qs = time.perf_counter() - t0
    t0 = time.perf_counter()
    kw = {"model_type": getattr(nncf.ModelType, spec["nncf_type"])} if spec["nncf_type"] else {}
    default_nncf = nncf.quantize(
        ov.convert_model(str(float_onnx)),
        nncf.Dataset([calib_imgs[i : i + 1] for i in range(len(calib_imgs))]),
        subset_size=len(calib_imgs),
        **kw,
    )
    t_nncf = time.perf_counter() - t0

    def ort_plain(path: Path):
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.log_severity_level = 3
        s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return lambda x: s.run(None, {name: x})[0]

    core = ov.Core()

    def ov_plain(model_or_path: Any):
        m = core.read_model(str(model_or_path)) if isinstance(model_or_path, Path) else model_or_path
        c = core.compile_model(m, "CPU", {"INFERENCE_NUM_THREADS": args.threads})
        return lambda x: np.asarray(c(x)[c.outputs[0]])

    vopt_cpu = vort.runner(cpu_int8, threads=args.threads)  # the level the artifact records
    vopt_ov = vov.runner(ov_int8, threads=args.threads, deployment=True)  # the hints the IR records
    torch.set_num_threads(args.threads)

    def eager(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x))[0].numpy()

    rows: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
        "PyTorch eager": ("pytorch fp32", eager),
        "ORT fp32": ("onnxruntime fp32", ort_plain(float_onnx)),
        "naive quantize_static": ("onnxruntime int8", ort_plain(naive)),
        "OpenVINO default hints": ("openvino bf16", ov_plain(float_onnx)),
        "default nncf.quantize": ("openvino int8", ov_plain(default_nncf)),
        "vopt cpu int8": ("onnxruntime int8", lambda x: next(iter(vopt_cpu({name: x}).values()))),
        "vopt openvino int8": ("openvino int8", lambda x: next(iter(vopt_ov({name: x}).values()))),
    }
    ref = np.concatenate([rows["ORT fp32"][1](eval_imgs[i : i + 1]) for i in range(len(eval_imgs))])
    x1 = np.ascontiguousarray(eval_imgs[:1])
    ms = timed({k: (lambda f=f: f(x1)) for k, (_, f) in rows.items()}, args.rounds, args.per_round)
    ips = {k: 1e3 / v for k, v in ms.items()}
    lines = [
        f"### {model}: batch 1, {args.threads} threads, {args.calib} calibration images, {args.eval} for "
        f"fidelity; median of {args.rounds} interleaved rounds x {args.per_round} calls",
        "",
        "| row | img/s | "
        + " | ".join(f"vs {a}" for a in ANCHORS)
        + " | % of ceiling (which) | centered cosine |",
        "|---|---|" + "---|" * len(ANCHORS) + "---|---|",
    ]
    for k, (ceil_key, f) in rows.items():
        out = np.concatenate([f(eval_imgs[i : i + 1]) for i in range(len(eval_imgs))])
        pct = 100 * spec["macs"] * ips[k] / (ceiling[ceil_key] * 1e9)
        ratios = " | ".join(f"{ips[k] / ips[a]:.2f}x" for a in ANCHORS)
        bold = "**" if k.startswith("vopt") else ""
        lines.append(
            f"| {bold}{k}{bold} | {ips[k]:.1f} | {ratios} | {pct:.0f}% ({ceil_key}) | "
            f"{centered_cosine(ref, out):.4f} |"
        )
    lines += [
        "",
        f"Wall time: vopt cpu int8 build {t_cpu:.0f} s, vopt openvino int8 build {t_ov:.0f} s (cold: load, "
        "export "
        f"with parity, calibration, quantization); naive quantize_static {t_qs:.0f} s, default nncf.quantize "
        f"{t_nncf:.0f} s.",
        "",
    ]
    vopt_cpu.close()
    vopt_ov.close()
    return lines


def kernel_flags() -> str:
    """The /proc/cpuinfo flags that pick ORT's and OpenVINO's int8 and bf16 kernels, present or not."""
    try:
        line = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown (no /proc/cpuinfo flags)"
    have = set(line.split(":", 1)[1].split())
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")
    return ", ".join(f"{f} {'yes' if f in have else 'no'}" for f in wanted)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="16 calibration / 8 evaluation images, 3 rounds x 3 calls"
    )
    ap.add_argument("--models", default="resnet50,vit-b16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calib", type=int, default=64)
    ap.add_argument("--eval", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--per-round", type=int, default=5)
    ap.add_argument("--gemm", type=int, default=1024, help="square GEMM size for the ceilings")
    for target in ("cpu", "openvino"):
        ap.add_argument(
            f"--{target}-set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help=f"a recipe key for vopt's {target} build (repeatable): a `vopt tune` winner's keys",
        )
    args = ap.parse_args()
    if args.quick:
        args.calib, args.eval, args.rounds, args.per_round = 16, 8, 3, 3
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from vopt.machine import cpu_model

    work = Path(tempfile.mkdtemp(prefix="vopt-anchors-"))
    load = os.getloadavg()[0]
    print(
        f"# cpu_anchors {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {cpu_model()}, "
        f"{os.cpu_count()} CPUs, "
        f"load average {load:.1f} at start{' (--quick)' if args.quick else ''}"
        f"{''.join(f'; cpu build: {k}' for k in args.cpu_set)}"
        f"{''.join(f'; openvino build: {k}' for k in args.openvino_set)}\n"
    )
    print(f"CPU flags that decide int8 kernels: {kernel_flags()}\n")
    ceiling = ceilings(work, args.threads, args.gemm, args.rounds, args.per_round)
    print(f"## Ceilings: {args.gemm}-square GEMM, {args.threads} threads (GMAC/s)\n")
    print("| runtime and precision | GMAC/s |\n|---|---|")
    for k, v in ceiling.items():
        print(f"| {k} | {v:.0f} |")
    print()
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        print("\n".join(run_model(model, work, args, ceiling)), flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
