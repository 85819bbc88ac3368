"""LiteRT (TFLite) runtime: ai-edge-litert's Interpreter (XNNPACK on CPU). Inputs and outputs are matched by
position to the artifact's names: litert-torch names them args_0 / output_0, ..."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vopt.targets.base import Runner


def signature(path: str | Path) -> tuple[list[dict], list[dict]]:
    """(inputs, outputs) of the default signature, in positional order, with shapes and dtypes."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    runner = interp.get_signature_runner()
    inputs = runner.get_input_details()
    outputs = runner.get_output_details()

    def ordered(details: dict) -> list[dict]:
        names = sorted(details, key=_position)
        return [{"name": n, "shape": [int(d) for d in details[n]["shape"]], "dtype": np.dtype(details[n]["dtype"]).name}
                for n in names]

    return ordered(inputs), ordered(outputs)


def runner(path: str | Path, input_names: list[str], output_names: list[str], *, threads: int | None = 2) -> Runner:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=threads or 2)
    sig = interp.get_signature_runner()
    ins = sorted(sig.get_input_details(), key=_position)
    outs = sorted(sig.get_output_details(), key=_position)
    batch = int(sig.get_input_details()[ins[0]]["shape"][0])

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = [np.ascontiguousarray(feeds[n], dtype=np.float32) for n in input_names]
        n = arrays[0].shape[0]
        # The converted graph has the example's fixed batch; larger batches run as a loop of that batch.
        chunks = [sig(**{k: a[i:i + batch] for k, a in zip(ins, arrays)}) for i in range(0, n, batch)]
        return {name: np.concatenate([np.asarray(c[o], dtype=np.float32) for c in chunks]) for name, o in zip(output_names, outs)}

    import importlib.metadata as md

    return Runner(run=run, runtime="litert-cpu",
                  info={"ai-edge-litert": md.version("ai-edge-litert"), "threads": threads or 2, "batch": batch})


def _position(name: str) -> int:
    digits = "".join(ch for ch in name.rsplit("_", 1)[-1] if ch.isdigit())
    return int(digits) if digits else 0
