"""Run ONNX artifacts with onnxruntime-web in headless Chromium.

vopt serves a static page (vopt/web/page.html) on 127.0.0.1 with COOP/COEP headers, so wasm threads
work, and a node script (vopt/web/driver.js) drives Chromium through playwright-core. Tensors cross
as raw bytes through the local server: inputs are fetched by the page, outputs are POSTed back.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from vopt.errors import BackendUnavailable, BuildError
from vopt.runtimes.base import Runner

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
ORT_DIST = WEB_DIR / "node_modules" / "onnxruntime-web" / "dist"
CHROMIUM = os.environ.get("VOPT_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Headless Linux has no WebGPU adapter without this; with it Dawn offers SwiftShader (Vulkan on CPU).
    "--enable-unsafe-webgpu",
    # Exposes navigator.ml, so the probe can say whether WebNN gives a context here (Linux: it does not).
    "--enable-features=WebMachineLearningNeuralNetwork",
]
EPS = ("webgpu", "wasm", "webnn")
# numpy dtype <-> onnxruntime-web tensor type
_TYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "int64": np.int64,
    "int32": np.int32,
    "int8": np.int8,
    "uint8": np.uint8,
    "bool": np.bool_,
}
_CONTENT = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".wasm": "application/wasm",
    ".map": "application/json",
}


def missing() -> str | None:
    """Why the browser runner cannot start here, as one line that says how to install it; None if it can."""
    if not Path(CHROMIUM).exists():
        return (
            f"headless Chromium not found at {CHROMIUM}: apt-get install chromium "
            "(or run `make browser-deps`)"
        )
    if shutil.which("node") is None:
        return "Node.js not found: apt-get install nodejs npm (or run `make browser-deps`)"
    for pkg in ("onnxruntime-web", "playwright-core"):
        if not (WEB_DIR / "node_modules" / pkg / "package.json").exists():
            return f"npm package {pkg} is missing: cd {WEB_DIR} && npm ci (or run `make browser-deps`)"
    return None


def require() -> None:
    reason = missing()
    if reason:
        raise BackendUnavailable(reason)


class _Server:
    """127.0.0.1-only static server for the page, the ORT bundle, models and tensors."""

    def __init__(self) -> None:
        self.blobs: dict[str, Path | bytes] = {}
        self.uploads: dict[str, bytes] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep the terminal quiet
                pass

            def _headers(self, code: int, ctype: str, length: int) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(length))
                # crossOriginIsolated, so onnxruntime-web may use wasm threads (SharedArrayBuffer).
                self.send_header("Cross-Origin-Opener-Policy", "same-origin")
                self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
                self.send_header("Cross-Origin-Resource-Policy", "same-origin")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                body, ctype = server.resolve(self.path.split("?", 1)[0])
                if body is None:
                    self._headers(404, "text/plain", 0)
                    return
                data = body.read_bytes() if isinstance(body, Path) else body
                self._headers(200, ctype, len(data))
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                data = self.rfile.read(length)
                if not self.path.startswith("/out/"):
                    self._headers(404, "text/plain", 0)
                    return
                server.uploads[self.path[len("/out/") :]] = data
                self._headers(204, "text/plain", 0)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def resolve(self, path: str) -> tuple[Path | bytes | None, str]:
        if path in ("/", "/index.html"):
            return WEB_DIR / "page.html", _CONTENT[".html"]
        if path == "/runner.js":
            return WEB_DIR / "runner.js", _CONTENT[".js"]
        if path.startswith("/ort/"):
            name = path[len("/ort/") :]
            file = ORT_DIST / name
            if "/" in name or ".." in name or not file.is_file():
                return None, ""
            return file, _CONTENT.get(file.suffix, "application/octet-stream")
        if path == "/favicon.ico":
            return b"", "image/x-icon"
        if path.startswith("/blob/"):
            return self.blobs.get(path[len("/blob/") :]), "application/octet-stream"
        return None, ""

    def publish(self, data: Path | bytes) -> str:
        token = uuid.uuid4().hex
        self.blobs[token] = data
        return f"{self.url}/blob/{token}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class BrowserSession:
    """One headless Chromium with the runner page open. Start once, run many models."""

    def __init__(self, timeout_s: float = 300.0) -> None:
        require()
        self.timeout_s = timeout_s
        self._ids = 0
        self._tmp = Path(tempfile.mkdtemp(prefix="vopt-browser-"))
        self._log = (self._tmp / "driver.log").open("w+")
        self.server = _Server()
        cfg = {
            "executable": CHROMIUM,
            "url": f"{self.server.url}/",
            "userDataDir": str(self._tmp / "profile"),
            "args": FLAGS,
        }
        self.proc = subprocess.Popen(
            ["node", str(WEB_DIR / "driver.js"), json.dumps(cfg)],
            cwd=WEB_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        atexit.register(self.close)
        ready = self._read(120.0)
        if not ready.get("ready"):
            self.close()
            raise BackendUnavailable(
                f"headless Chromium did not start: {ready.get('error', 'no reply')}{self._log_tail()}"
            )
        self._probe: dict[str, Any] | None = None

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _read(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise BuildError(
                    f"the browser did not answer within {timeout:.0f} s{self._log_tail()}", stage="browser"
                ) from None
            if line is None:
                raise BuildError(
                    f"the browser driver exited (code {self.proc.poll()}){self._log_tail()}", stage="browser"
                )
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)

    def _log_tail(self) -> str:
        with contextlib.suppress(Exception):
            self._log.flush()
            lines = [ln for ln in (self._tmp / "driver.log").read_text().splitlines() if ln.strip()]
            if lines:
                return "; driver log: " + " | ".join(lines[-3:])[:600]
        return ""

    def call(self, fn: str, arg: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        """Call window.<fn>(arg) in the page; raises RuntimeError with the page's message on failure."""
        self._ids += 1
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": self._ids, "fn": fn, "arg": arg or {}}) + "\n")
        self.proc.stdin.flush()
        reply = self._read(timeout or self.timeout_s)
        if not reply.get("ok"):
            raise RuntimeError(reply.get("error", "unknown error"))
        return reply.get("result")

    def probe(self) -> dict[str, Any]:
        """What this browser offers: WebGPU adapter and features, WebNN context, wasm threads, ORT version."""
        if self._probe is None:
            self._probe = self.call("voptProbe")
        return self._probe

    def load(
        self,
        path: str | Path,
        ep: str,
        free_dims: dict[str, int] | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """`options`: the artifact's recorded session settings for this EP (enableGraphCapture,
        preferredLayout)."""
        key = uuid.uuid4().hex
        url = self.server.publish(Path(path))
        info = self.call(
            "voptLoad",
            {
                "key": key,
                "url": url,
                "ep": ep,
                "freeDimensionOverrides": free_dims or {},
                "sessionOptions": options or {},
            },
        )
        info["key"] = key
        return info

    def _publish_feeds(self, feeds: dict[str, np.ndarray], types: dict[str, str]) -> list[dict[str, Any]]:
        specs = []
        for name, value in feeds.items():
            kind = types.get(name, "float32")
            arr = np.ascontiguousarray(value, dtype=_TYPES[kind])
            specs.append(
                {
                    "name": name,
                    "url": self.server.publish(arr.tobytes()),
                    "dims": list(arr.shape),
                    "type": kind,
                }
            )
        return specs

    def profile(
        self,
        path: str | Path,
        ep: str,
        feeds: dict[str, np.ndarray],
        types: dict[str, str],
        *,
        runs: int,
        warmup: int = 2,
        free_dims: dict[str, int] | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A profiled session in the page: {'events': ORT's profiler lines, 'total_ms': mean per
        inference}."""
        specs = self._publish_feeds(feeds, types)
        try:
            return self.call(
                "voptProfile",
                {
                    "url": self.server.publish(Path(path)),
                    "ep": ep,
                    "freeDimensionOverrides": free_dims or {},
                    "sessionOptions": options or {},
                    "feeds": specs,
                    "runs": runs,
                    "warmup": warmup,
                },
            )
        finally:
            for spec in specs:
                self.server.blobs.pop(spec["url"].rsplit("/", 1)[-1], None)

    def run(
        self, key: str, feeds: dict[str, np.ndarray], types: dict[str, str]
    ) -> tuple[dict[str, np.ndarray], float, dict[str, int] | None]:
        """Run one session; returns the outputs (float16 widened to float32), the run time in ms and, for a
        GPU-fed session (graph capture), the wasm-side handle each input buffer ran on."""
        specs = self._publish_feeds(feeds, types)
        upload = uuid.uuid4().hex
        result = self.call(
            "voptRun", {"key": key, "feeds": specs, "upload": f"{self.server.url}/out/{upload}"}
        )
        for spec in specs:
            self.server.blobs.pop(spec["url"].rsplit("/", 1)[-1], None)
        outputs = {}
        for o in result["outputs"]:
            raw = self.server.uploads.pop(f"{upload}/{_quote(o['name'])}")
            arr = np.frombuffer(raw, dtype=_TYPES[o["type"]]).reshape(o["dims"])
            outputs[o["name"]] = arr.astype(np.float32) if arr.dtype == np.float16 else arr.copy()
        return outputs, float(result["run_ms"]), result.get("input_handles")

    def release(self, key: str) -> None:
        self.call("voptRelease", {"key": key})

    def close(self) -> None:
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(Exception):
                assert proc.stdin is not None
                proc.stdin.write(json.dumps({"fn": "close"}) + "\n")
                proc.stdin.close()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if getattr(self, "server", None) is not None:
            self.server.close()
            self.server = None  # type: ignore[assignment]
        if getattr(self, "_log", None) is not None and not self._log.closed:
            self._log.close()
        shutil.rmtree(getattr(self, "_tmp", ""), ignore_errors=True)
        atexit.unregister(self.close)

    def __enter__(self) -> BrowserSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def input_types(path: str | Path) -> dict[str, str]:
    """onnxruntime-web tensor type per graph input, from the ONNX file."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    inits = {t.name for t in proto.graph.initializer}
    out = {}
    for i in proto.graph.input:
        if i.name in inits:
            continue
        elem = i.type.tensor_type.elem_type
        out[i.name] = onnx.helper.tensor_dtype_to_np_dtype(elem).name if elem else "float32"
    return out


_shared: BrowserSession | None = None
_shared_lock = threading.Lock()


def shared_session() -> BrowserSession:
    """One browser per process, started on first use and closed at exit (tests and builds reuse it)."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.proc.poll() is not None:
            _shared = BrowserSession()
        return _shared


def model_info(path: str | Path) -> dict[str, Any]:
    """Input types, whether the model computes in fp16, and its recorded free-dimension overrides."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    fp16 = any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer) or any(
        v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
        for v in [*proto.graph.input, *proto.graph.output]
    )
    return {
        "fp16": fp16,
        "free_dims": json.loads(meta.get("vopt.web.freeDimensionOverrides", "{}")),
        "session_options": json.loads(meta.get("vopt.web.session_options", "{}")),
        "types": input_types(path),
    }


def ep_options(info: dict[str, Any], ep: str) -> dict[str, Any]:
    """The artifact's recorded session settings (model_info), for the EP it was compiled for only: wasm has
    no graph capture or layout option."""
    recorded = info["session_options"]
    return {k: v for k, v in recorded.items() if k != "ep"} if recorded.get("ep") == ep else {}


def _short(exc: BaseException) -> str:
    """onnxruntime-web's message without the build machine's source path that prefixes it."""
    import re

    return re.sub(r"/\S+/onnxruntime/(\S+:\d+)", r"\1", str(exc)).strip()[:400]


def _rejected(
    sess: BrowserSession, path: str | Path, ep: str, free_dims, options, exc: Exception
) -> BuildError:
    """The session could not be created: name the nodes (quoted in the message, else bisected with
    sessions on sub-graphs in the same browser; vopt/runtimes/diagnose.py)."""
    from vopt.runtimes.diagnose import rejected_graph_error

    def loads(sub: Path) -> None:
        try:
            made = sess.load(sub, ep, free_dims, options)
        except RuntimeError as err:
            raise RuntimeError(_short(err)) from err
        sess.release(made["key"])

    return rejected_graph_error(
        f"onnxruntime-web ({ep})",
        Path(path),
        RuntimeError(_short(exc)),
        loads,
        stage="validate",
        hint_for=lambda names: (
            "if they are quantized, keep them in float (quantize: {exclude: {nodes: [" + names + "]}}); "
            "otherwise change the model so that it exports without them"
        ),
    )


def runner(path: str | Path, *, ep: str = "wasm", session: BrowserSession | None = None) -> Runner:
    """A Runner for the artifact on one onnxruntime-web EP in headless Chromium (the shared browser by
    default)."""
    sess = session or shared_session()
    info = model_info(path)
    try:
        options = ep_options(info, ep)
        loaded = sess.load(path, ep, info["free_dims"], options)
    except RuntimeError as exc:
        raise _rejected(sess, path, ep, info["free_dims"], options, exc) from exc
    times: list[float] = []
    first: dict[str, dict[str, int]] = {}  # the first run's input handles (GPU-fed sessions)

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            out, ms, handles = sess.run(loaded["key"], feeds, info["types"])
        except RuntimeError as exc:
            from vopt.runtimes.diagnose import named_in_error

            named = named_in_error(str(exc), path)
            raise BuildError(
                f"onnxruntime-web ({ep}) failed to run: {_short(exc)}",
                stage="validate",
                lines=[f"in node {n} ({t})" for n, t in named[:8]],
            ) from exc
        times.append(ms)
        if handles is not None:
            first.setdefault("handles", handles)
            meta["gpu_input_rebinds"] += handles != first["handles"]
        return out

    probe = sess.probe()
    meta = {
        "ep": ep,
        "placement": _placement_summary(loaded.get("placement") or {}, ep),
        "onnxruntime_web": probe["ort"].get("web"),
        "browser": probe["userAgent"].split("HeadlessChrome/")[-1].split(" ")[0],
        "threads": probe["threads"],
        "load_ms": round(loaded["load_ms"], 2),
        "run_ms": times,
        "session_options": options,
        # "gpu-buffer" under WebGPU graph capture: the inputs are written into GPU buffers the capture replays
        "input_location": loaded.get("input_location", "cpu"),
    }
    if meta["input_location"] == "gpu-buffer":
        # Runs whose input buffers were registered under another handle than the first run's: the capture
        # binds the first run's, so anything but 0 means a replay on a released handle (see runner.js).
        meta["gpu_input_rebinds"] = 0
    if ep == "webgpu":
        meta["adapter"] = probe["webgpu"].get("info")
    return Runner(run=run, runtime=f"browser-{ep}", info=meta, on_close=lambda: sess.release(loaded["key"]))


_EP_NAMES = {
    "webgpu": "WebGpuExecutionProvider",
    "webnn": "WebNNExecutionProvider",
    "wasm": "CPUExecutionProvider",
}


def _placement_summary(placed: dict[str, dict[str, int]], ep: str) -> dict[str, Any]:
    """ORT's own node placement (after its graph optimizations): which nodes left the requested EP."""
    if not placed:  # ORT logs placements only when more than one EP is in play
        return {"nodes_off_ep": 0, "by_ep": {_EP_NAMES[ep]: "all"}}
    wanted = _EP_NAMES[ep]
    off = {
        f"{op}": n
        for name, ops in placed.items()
        if name != wanted
        for op, n in ops.items()
        if not op.startswith("Memcpy")
    }
    return {"nodes_off_ep": sum(off.values()), "ops_off_ep": off, "by_ep": placed}


def ep_status(probe: dict[str, Any], ep: str, fp16: bool) -> tuple[str, str]:
    """('ok', '') when the EP can verify this model here, else ('unavailable'|'unverifiable', why)."""
    if ep == "webgpu":
        gpu = probe["webgpu"]
        if not gpu.get("adapter"):
            return "unavailable", f"no WebGPU adapter in this browser ({gpu.get('reason')})"
        if fp16 and "shader-f16" not in gpu.get("features", []):
            arch = (gpu.get("info") or {}).get("architecture") or "this adapter"
            return (
                "unverifiable",
                f"fp16 model not verifiable on this adapter: the WebGPU adapter ({arch}) has no shader-f16",
            )
    if ep == "webnn" and not probe["webnn"].get("context"):
        return (
            "unavailable",
            f"no WebNN context in this browser ({probe['webnn'].get('reason')}); checked on wasm instead",
        )
    return "ok", ""


def timing(times: list[float]) -> dict[str, float]:
    """First run (includes shader compilation on WebGPU) apart from the steady-state median."""
    if not times:
        return {}
    rest = times[1:] or times
    return {
        "first_run_ms": round(times[0], 3),
        "median_run_ms": round(float(np.median(rest)), 3),
        "runs": len(times),
    }


def cold_start(timing_: dict[str, Any]) -> float:
    """Session creation plus the first run: what a page waits for before its first answer."""
    return round(timing_["load_ms"] + timing_["first_run_ms"], 3)


def run_eps(
    path: str | Path,
    batches: list[np.ndarray],
    input_name: str,
    eps: tuple[str, ...] = EPS,
    static_batch: int | None = None,
    session: BrowserSession | None = None,
) -> dict[str, dict[str, Any]]:
    """Run the artifact on each EP the browser offers; outputs per EP, or the reason it did not run."""
    from vopt.runtimes.base import run_batches

    sess = session or shared_session()
    probe = sess.probe()
    fp16 = model_info(path)["fp16"]
    results: dict[str, dict[str, Any]] = {}
    for ep in eps:
        status, reason = ep_status(probe, ep, fp16)
        if status != "ok":
            results[ep] = {"status": status, "reason": reason}
            continue
        try:
            run = runner(path, ep=ep, session=sess)
        except BuildError as exc:
            results[ep] = {"status": "failed", "reason": exc.message}
            continue
        try:
            with run:
                outputs = run_batches(run, input_name, batches, static_batch=static_batch)
        except BuildError as exc:
            results[ep] = {"status": "failed", "reason": exc.message}
            continue
        info = {k: v for k, v in run.info.items() if k != "run_ms"}
        timed = {"load_ms": info.pop("load_ms"), **timing(run.info["run_ms"])}
        timed["cold_start_ms"] = cold_start(timed)
        results[ep] = {"status": "ok", "outputs": outputs, "timing": timed, "runtime_info": info}
    return results
