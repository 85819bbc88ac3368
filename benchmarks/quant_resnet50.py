"""vopt's int8 vs the defaults, for ResNet-50 (sane random weights), side by side on this machine.

    .venv/bin/python benchmarks/quant_resnet50.py [--calib 64] [--eval 32] [--rounds 7] [--threads 2]

Rows: ORT fp32; vopt cpu int8 (ORT QDQ, u8/s8 per-channel, static shapes, pre-processed); a default
`onnxruntime.quantization.quantize_static` run (no pre-processing, default settings, the exported model
with its dynamic batch axis); OpenVINO fp32 (default hints: bf16 on AVX512-BF16 CPUs); a default
`nncf.quantize` run; vopt's openvino int8 (NNCF through the quantize stage). All calibrate on the same
real images (vopt's built-in samples with seeded crops). Agreement is measured against ORT fp32 on
other crops: top-1 agreement, raw and centered cosine. Throughput: batch 1, median of interleaved rounds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def recipe(name: str, target: str, calib: int) -> dict:
    return {
        "name": name,
        "model": {
            "source": "hf",
            "id": "resnet-50-random",
            "family": "resnet",
            "weights": "random",
            "config": {"num_labels": 1000},
            "input": {"shape": [1, 3, 224, 224]},
        },
        "export": {"dynamic_batch": True, "parity_samples": 2},
        "quantize": {
            "calibration": {"samples": calib, "batch": 8},
            "check": {"samples": 4, "benchmark": False},
        },
        "compile": {"target": target},
        "validate": None,
    }


def build(data: dict, work: Path) -> dict[str, Path]:
    """Run vopt build; return the artifact path of each step, from the cache."""
    import yaml

    from vopt.core.cache import Cache
    from vopt.pipeline.runner import build as vopt_build
    from vopt.recipe.resolve import load_recipe

    path = work / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    cache = Cache(work / "cache")
    result = vopt_build(load_recipe(path), work / "build", cache=cache)
    paths = {}
    for step in result.manifest["steps"]:
        entry = cache.get(step["key"])
        if entry is not None and step["output_sha256"] != step["input_sha256"]:
            paths[step["stage"]] = Path(entry.artifact.path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calib", type=int, default=64, help="calibration images (same for every method)")
    ap.add_argument("--eval", type=int, default=32, help="validation images for agreement")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import nncf
    import onnxruntime as ort
    import openvino as ov
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    from vopt.bench.timing import interleaved
    from vopt.datasets.images import iter_batches, list_images, sample_files
    from vopt.models.families import get_family
    from vopt.quant.evaluate import top1_agreement
    from vopt.validate.metrics import centered_cosine, cosine

    work = Path(tempfile.mkdtemp(prefix="vopt-bench-"))
    t0 = time.perf_counter()
    cpu = build(recipe("r50-cpu-int8", "cpu", args.calib), work)
    t_cpu = time.perf_counter() - t0
    float_onnx, vopt_int8 = cpu["export"], cpu["quantize"]
    t0 = time.perf_counter()
    ovb = build(recipe("r50-ov-int8", "openvino", args.calib), work)
    t_ov = time.perf_counter() - t0
    vopt_ov_int8 = ovb["quantize"]
    vopt_ov_int8 = vopt_ov_int8 / "model.xml" if vopt_ov_int8.is_dir() else vopt_ov_int8

    pre = get_family("resnet").preprocess([224, 224])
    files = list_images(None)
    calib_imgs = np.concatenate(
        list(iter_batches(sample_files(files, args.calib, 0), pre, 8, augment_seed=0))
    )
    eval_imgs = np.concatenate(list(iter_batches(sample_files(files, args.eval, 1), pre, 8, augment_seed=1)))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calib_imgs[i : i + 1] for i in range(len(calib_imgs)))

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"pixel_values": x}

    default_qs = work / "default_quantize_static.onnx"
    t0 = time.perf_counter()
    quantize_static(str(float_onnx), str(default_qs), Reader(), quant_format=QuantFormat.QDQ)
    t_qs = time.perf_counter() - t0
    t0 = time.perf_counter()
    default_nncf = nncf.quantize(
        ov.convert_model(str(float_onnx)),
        nncf.Dataset([calib_imgs[i : i + 1] for i in range(len(calib_imgs))]),
        subset_size=len(calib_imgs),
    )
    t_nncf = time.perf_counter() - t0
    ov.save_model(default_nncf, str(work / "default_nncf.xml"), compress_to_fp16=False)

    def ort_call(path: Path):
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.log_severity_level = 3
        s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        return lambda x: s.run(None, {name: x})[0]

    core = ov.Core()

    def ov_call(path: Path):
        c = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_NUM_THREADS": args.threads})
        return lambda x: np.asarray(c(x)[c.outputs[0]])

    rows = {
        "ORT fp32": ("onnxruntime", ort_call(float_onnx)),
        "vopt cpu int8 (ORT QDQ)": ("onnxruntime", ort_call(vopt_int8)),
        "default quantize_static": ("onnxruntime", ort_call(default_qs)),
        "OpenVINO fp32 (default hints)": ("openvino", ov_call(float_onnx)),
        "default nncf.quantize": ("openvino", ov_call(work / "default_nncf.xml")),
        "vopt openvino int8 (NNCF)": ("openvino", ov_call(vopt_ov_int8)),
    }
    ref = np.concatenate([rows["ORT fp32"][1](eval_imgs[i : i + 1]) for i in range(len(eval_imgs))])
    x1 = eval_imgs[:1]
    timings = interleaved(
        {k: (lambda f=f: f(x1)) for k, (_, f) in rows.items()}, rounds=args.rounds, per_round=5, warmup=3
    )
    print(
        f"\nResNet-50 (random sane weights), batch 1, {args.threads} threads, {args.calib} calibration "
        "images, "
        f"{args.eval} validation images; median of {args.rounds} interleaved rounds x 5 calls\n"
    )
    print("| model | runtime | img/s | top-1 agreement | cosine | centered cosine |")
    print("|---|---|---|---|---|---|")
    for k, (rt, f) in rows.items():
        out = np.concatenate([f(eval_imgs[i : i + 1]) for i in range(len(eval_imgs))])
        ips = 1000.0 / timings[k]["p50_ms"]
        print(
            f"| {k} | {rt} | {ips:.1f} | {top1_agreement(ref, out):.3f} | {cosine(ref, out):.5f} | "
            f"{centered_cosine(ref, out):.4f} |"
        )
    print(
        f"\nwall time: vopt cpu build {t_cpu:.0f}s (load+export+quantize), vopt openvino build {t_ov:.0f}s, "
        f"default quantize_static {t_qs:.0f}s, default nncf.quantize {t_nncf:.0f}s"
    )


if __name__ == "__main__":
    main()
