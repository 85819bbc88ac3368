"""onnxruntime-web's own profiler, in headless Chromium: the WebAssembly build of ORT prints its profiler's
events (the same JSON as native ORT's profile file) to the page console, where vopt's runner collects them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vopt.profiling.ort import _node_times
from vopt.profiling.result import Profile


def profile_web(
    path: str | Path,
    feeds: dict[str, np.ndarray],
    *,
    runs: int = 10,
    warmup: int = 2,
    threads: int | None = None,
    ep: str = "wasm",
) -> Profile:
    from vopt.runtimes.browser import ep_options, model_info, shared_session

    sess = shared_session()
    info = model_info(path)
    try:
        got = sess.profile(
            path,
            ep,
            feeds,
            info["types"],
            runs=runs,
            warmup=warmup,
            free_dims=info["free_dims"],
            options=ep_options(info, ep),
        )
    except RuntimeError as exc:
        from vopt.errors import BuildError

        raise BuildError(
            f"onnxruntime-web ({ep}) could not profile the model: {exc}", stage="profile"
        ) from exc
    events = parse_events(got["events"])
    probe = sess.probe()
    notes = []
    if threads:
        notes.append(f"--threads ignored: the page runs {probe['threads']} wasm thread(s)")
    if not any(e.get("cat") == "Node" for e in events):
        notes.append("onnxruntime-web printed no kernel events")
    return Profile(
        runtime=(
            f"onnxruntime-web {probe['ort'].get('web')} ({ep}, {probe['threads']} thread(s), "
            "headless Chromium)"
        ),
        runs=runs,
        ops=_node_times(events, warmup + runs, runs),
        total_ms=float(got["total_ms"]),
        notes=notes,
    )


def parse_events(lines: list[str]) -> list[dict]:
    """ORT's events from console lines: one event per line, or a whole JSON array in one message."""
    events: list[dict] = []
    for text in lines:
        for line in text.splitlines():
            line = line.strip().rstrip(",")
            if line.startswith("["):
                line = line[1:]
            if line.endswith("]"):
                line = line[:-1]
            if not line.startswith("{"):
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                events.append(event)
    return events
