"""Stable Diffusion on this machine's CPU: per-component latency, seconds per image at N denoising steps end
to end, and peak memory, for PyTorch eager (diffusers' modules, as loaded) and the artifacts of
recipes/sd-cpu.yaml (ONNX Runtime) and recipes/sd-openvino.yaml (OpenVINO), float and with the UNet in int8
(ORT QDQ on cpu; NNCF full, hybrid and weights-only on openvino), timed in one interleaved run (each round
runs every runtime in turn, so a busy machine slows them alike).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/diffusion.py [--steps 20] [--rounds 5] [--threads 1]

The pipeline is the recipes' tiny config with RANDOM weights (no hub here: 32x32 images, 16x16 latents,
a 1.4M-parameter UNet): the timings say what each runtime costs on this architecture at this size, not what
SD 1.5 takes at 512x512. Peak memory is each runtime's own process (a child that loads only that runtime's
components and runs the loop once), as VmHWM."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# runtime -> (shipped recipe, what the benchmark's recipe adds: the UNet's int8, as a user writes it)
RECIPES: dict[str, tuple[str, dict[str, Any]]] = {
    "onnxruntime": ("sd-cpu", {}),
    "openvino": ("sd-openvino", {}),
    "onnxruntime-int8": ("sd-cpu", {"quantize": {"precision": "int8"}}),
    "openvino-int8": ("sd-openvino", {"quantize": {"precision": "int8"}}),
    "openvino-int8-hybrid": (
        "sd-openvino",
        {"quantize": {"precision": "int8", "options": {"mode": "hybrid"}}},
    ),
    "openvino-int8-weights": (
        "sd-openvino",
        {"quantize": {"precision": "int8", "options": {"mode": "weights"}}},
    ),
}
RUNTIMES = ("pytorch", *RECIPES)
THREADS = [1]  # intra-op threads of every runtime (--threads): one each is fair on a shared, loaded machine


def build(work: Path, runtime: str) -> Path:
    """`vopt build` of the runtime's recipe (validation on: the artifacts are the checked ones, int8's gates
    included); its build directory."""
    import yaml

    base, extra = RECIPES[runtime]
    name = f"bench-{runtime}"
    recipe = work / "recipes" / f"{name}.yaml"
    recipe.parent.mkdir(parents=True, exist_ok=True)
    data = {"extends": [str(REPO / "recipes" / f"{base}.yaml")], "name": name, **extra}
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))
    out = work / "build"
    cmd = [str(REPO / ".venv" / "bin" / "vopt"), "build", str(recipe), "--out", str(out)]
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return out / name


def torch_calls() -> tuple[dict[str, Any], dict[str, Any]]:
    """The PyTorch components as the load step builds them (same config and seed), and the pipeline facts."""
    import numpy as np
    import torch
    import yaml

    from vopt.models.sources.diffusers import DiffusersSource
    from vopt.recipe.sections.model import ModelSection

    family = yaml.safe_load((REPO / "recipes" / "families" / "stable_diffusion.yaml").read_text())
    spec = ModelSection.model_validate(family["model"])
    loaded = DiffusersSource().load(spec)
    calls = {}
    for name, part in loaded.components.items():
        module, fam = part.module, part.family
        names = list(fam.example_inputs(module, spec.input.shape))

        class Call:
            def __init__(self, module=module, fam=fam, names=names):
                self.module, self.fam, self.inputs, self.outputs = module, fam, names, list(fam.outputs)

            def __call__(self, feeds):
                with torch.no_grad():
                    outs = self.module(
                        *(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self.inputs)
                    )
                return {n: t.float().numpy() for n, t in zip(self.outputs, outs, strict=True)}

        calls[name] = Call()
    return calls, loaded.meta["pipeline"]


def artifact_calls(build_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each component of a build directory on its runtime, as deployed (the settings it records)."""
    from vopt.core.artifact import Artifact
    from vopt.registry import get_format
    from vopt.validate.components import ComponentRun

    manifest = json.loads((build_dir / "manifest.json").read_text())
    calls = {}
    for name, comp in manifest["artifact"]["components"].items():
        art = Artifact.model_validate({**comp, "path": str(build_dir / comp["file"])})
        calls[name] = ComponentRun(get_format(art.format).open(art, threads=THREADS[0]), art)
    return calls, manifest["artifact"]["meta"]["pipeline"]


def settings(steps: int, model: dict[str, Any]) -> dict[str, Any]:
    check = {"steps": steps, "scheduler": "dpm++", "guidance_scale": 7.5, "images": 1, "seed": 0,
             "prompts": ["a photograph of an astronaut riding a horse"]}  # fmt: skip
    return {"pipeline": check, "model": model}


def run_pipeline(calls: dict[str, Any], steps: int, model: dict[str, Any]) -> Any:
    import numpy as np

    from vopt.models.families.stable_diffusion import PipelineSettings, denoise

    images = np.zeros((1, 3, model["height"], model["width"]), np.float32)
    return denoise(calls, images, PipelineSettings.of(settings(steps, model)))


def memory_child(runtime: str, work: Path, steps: int) -> None:
    """One runtime alone in this process: its components loaded, the loop run once; peak RSS printed."""
    import torch  # noqa: F401 - imported by every runtime's path: the baseline includes it

    from vopt.bench.memory import current_rss_mb, peak_rss_mb, reset_peak

    base = current_rss_mb()
    reset_peak()
    built = work / "build" / f"bench-{runtime}"
    calls, model = torch_calls() if runtime == "pytorch" else artifact_calls(built)
    run_pipeline(calls, steps, model)
    print(json.dumps({"peak_rss_mb": peak_rss_mb(), "baseline_mb": base}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--work", type=Path, default=REPO / "build" / "bench-diffusion")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--memory-child", choices=RUNTIMES)
    args = ap.parse_args()
    import torch

    THREADS[0] = args.threads
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child, args.work, args.steps)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    for runtime in RECIPES:
        build(args.work, runtime)
    import numpy as np

    from vopt.bench.timing import interleaved

    runtimes: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {"pytorch": torch_calls()}
    for runtime in RECIPES:
        runtimes[runtime] = artifact_calls(args.work / "build" / f"bench-{runtime}")
    model = runtimes["pytorch"][1]
    # the inputs each component really gets: one run of the loop (PyTorch), recorded
    ref_out, seen = run_pipeline(runtimes["pytorch"][0], args.steps, model)
    one_step = {k: v[: len(v) // 3] for k, v in seen["unet"][0].items()}  # one UNet call (both CFG halves)
    feeds = {"text_encoder": seen["text_encoder"][0], "unet": one_step, "vae_decoder": seen["vae_decoder"][0],
             "vae_encoder": seen["vae_encoder"][0]}  # fmt: skip
    per_component: dict[str, dict[str, Any]] = {}
    for comp, f in feeds.items():
        timed = interleaved(
            {rt: (lambda c=calls[comp], f=f: c(f)) for rt, (calls, _) in runtimes.items()},
            rounds=args.rounds,
            per_round=5,
        )
        per_component[comp] = {rt: round(t["p50_ms"], 3) for rt, t in timed.items()}
    # end to end, interleaved by round: one image per prompt, N steps, guidance 7.5
    e2e: dict[str, list[float]] = {rt: [] for rt in runtimes}
    txt2img = {
        rt: {k: c for k, c in calls.items() if k != "vae_encoder"} for rt, (calls, _) in runtimes.items()
    }
    for _ in range(args.rounds):
        for rt, calls in txt2img.items():
            t0 = time.perf_counter()
            run_pipeline(calls, args.steps, model)
            e2e[rt].append(time.perf_counter() - t0)
    psnr, ssim = {}, {}
    from vopt.validate.images import pipeline_metrics

    for rt, calls in txt2img.items():
        out, _ = run_pipeline(calls, args.steps, model)
        metrics = pipeline_metrics(ref_out, out)
        psnr[rt], ssim[rt] = round(metrics["psnr_db"], 1), round(metrics["ssim"], 4)
    memory = {}
    for rt in runtimes:
        res = subprocess.run(
            [sys.executable, __file__, "--memory-child", rt, "--work", str(args.work),
             "--steps", str(args.steps), "--threads", str(args.threads)],
            check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        memory[rt] = json.loads(res.stdout.strip().splitlines()[-1])
    result = {
        "threads": args.threads,
        "steps": args.steps,
        "rounds": args.rounds,
        "per_component_p50_ms": per_component,
        "seconds_per_image": {rt: round(float(np.median(v)), 4) for rt, v in e2e.items()},
        "speedup_vs_pytorch": {
            rt: round(float(np.median(e2e["pytorch"]) / np.median(v)), 2) for rt, v in e2e.items()
        },
        "psnr_db_vs_pytorch": psnr,
        "ssim_vs_pytorch": ssim,
        "peak_rss_mb": {rt: round(m["peak_rss_mb"], 1) for rt, m in memory.items()},
        # what loading and running the components added to the process (python, torch and vopt imported)
        "peak_over_baseline_mb": {
            rt: round(m["peak_rss_mb"] - m["baseline_mb"], 1) for rt, m in memory.items()
        },
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
