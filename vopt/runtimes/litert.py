"""LiteRT (TFLite) runtime: ai-edge-litert's Interpreter (XNNPACK on CPU). Inputs and outputs are matched by
position to the artifact's names: litert-torch names them args_0 / output_0, ..."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from vopt.runtimes.base import Runner


def signature(path: str | Path) -> tuple[list[dict], list[dict]]:
    """(inputs, outputs) of the default signature, in positional order, with shapes and dtypes."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    runner = interp.get_signature_runner()
    inputs = runner.get_input_details()
    outputs = runner.get_output_details()

    def ordered(details: dict) -> list[dict]:
        names = sorted(details, key=_position)
        return [
            {
                "name": n,
                "shape": [int(d) for d in details[n]["shape"]],
                "dtype": np.dtype(details[n]["dtype"]).name,
            }
            for n in names
        ]

    return ordered(inputs), ordered(outputs)


def runner(
    path: str | Path, input_names: list[str], output_names: list[str], *, threads: int | None = 2
) -> Runner:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=threads or 2)
    sig = interp.get_signature_runner()
    in_details, out_details = sig.get_input_details(), sig.get_output_details()
    ins = sorted(in_details, key=_position)
    outs = sorted(out_details, key=_position)
    batch = int(in_details[ins[0]]["shape"][0])

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if len(input_names) == 1 and input_names[0] not in feeds and len(feeds) == 1:
            feeds = {
                input_names[0]: next(iter(feeds.values()))
            }  # one input: the caller's name for it is fine
        arrays = [np.ascontiguousarray(feeds[n], dtype=np.float32) for n in input_names]
        n = arrays[0].shape[0]
        # The converted graph has the example's fixed batch; larger batches run as a loop of that batch.
        chunks = [
            sig(**{k: _quantize(a[i : i + batch], in_details[k]) for k, a in zip(ins, arrays, strict=True)})
            for i in range(0, n, batch)
        ]
        return {
            name: np.concatenate([_dequantize(c[o], out_details[o]) for c in chunks])
            for name, o in zip(output_names, outs, strict=False)
        }

    import importlib.metadata as md

    return Runner(
        run=run,
        runtime="litert-cpu",
        info={
            "ai-edge-litert": md.version("ai-edge-litert"),
            "threads": threads or 2,
            "batch": batch,
            "input_name": input_names[0],
            "static_batch": batch,
        },
    )


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    """Full-int8 models take int8 inputs: quantize with the tensor's own scale and zero point."""
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return x
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype == np.float32:
        return y
    scale, zero = detail["quantization"]
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


def _position(name: str) -> int:
    digits = "".join(ch for ch in name.rsplit("_", 1)[-1] if ch.isdigit())
    return int(digits) if digits else 0


RUNTIME_NAME = "litert"


def open_artifact(
    path: str | Path, *, settings: dict | None = None, threads: int | None = None, accurate: bool = False
) -> Runner:
    """The format table's entry: outputs named by position (output_0, ...) as the signature orders them;
    LiteRT has no precision hint, so `accurate` changes nothing."""
    ins, outs = signature(path)
    return runner(
        path,
        [i["name"] for i in ins],
        [f"output_{i}" for i in range(len(outs))],
        threads=threads or (settings or {}).get("threads") or 2,
    )


@contextlib.contextmanager
def stdout_to_stderr():
    """litert-torch and the quantizer print progress on stdout (Python and C++): keep `--json` stdout
    clean."""
    import os
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
