// The page side of vopt's browser runner. The node driver (driver.mjs) calls these functions through
// playwright's page.evaluate; tensors never cross as JSON numbers: inputs are fetched as raw bytes
// from the local vopt server and outputs are POSTed back to it as raw bytes.
"use strict";

ort.env.wasm.wasmPaths = "/ort/";
// Threads need crossOriginIsolated (COOP/COEP on the server); otherwise ORT falls back to one thread.
ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(navigator.hardwareConcurrency || 1, 4) : 1;
ort.env.logLevel = "error";

const sessions = new Map();
const gpuFed = new Set(); // sessions whose inputs must be GPU buffers (WebGPU graph capture)

// While a session is created with verbose logging, keep ORT's node-placement lines (which EP runs
// which node, after ORT's graph optimizations) and drop the rest of its verbose chatter.
let capture = null;
// While a session profiles, the wasm build of ORT prints its profiler's JSON events to the console (it has no
// file system to write them to): they are collected here instead of printed.
let profiled = null;
for (const level of ["log", "info", "warn", "error", "debug"]) {
  const original = console[level].bind(console);
  console[level] = (...args) => {
    if (profiled) {
      const text = args.map(String).join(" ");
      if (text.includes('"cat"')) {
        profiled.push(text);
        return;
      }
    }
    if (capture) {
      const text = args.map(String).join(" ");
      if (text.includes("VerifyEachNodeIsAssignedToAnEp")) capture.push(text);
      if (/\[[VI]:onnxruntime/.test(text)) return;
    }
    original(...args);
  };
}

function parsePlacement(lines) {
  const placed = {};
  let ep = null;
  for (const line of lines) {
    let m = line.match(/Node\(s\) placed on \[(\w+)\]/);
    if (m) {
      ep = m[1];
      placed[ep] = placed[ep] || {};
      continue;
    }
    m = line.match(/VerifyEachNodeIsAssignedToAnEp\]\s+(\S+) \(/);
    if (m && ep) placed[ep][m[1]] = (placed[ep][m[1]] || 0) + 1;
  }
  return placed;
}

const ARRAYS = {
  float32: Float32Array,
  float16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

async function gpuInfo() {
  if (!navigator.gpu) return { present: false, adapter: false, reason: "navigator.gpu is undefined" };
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) return { present: true, adapter: false, reason: "requestAdapter() returned null" };
  const info = adapter.info || {};
  return {
    present: true,
    adapter: true,
    features: Array.from(adapter.features).sort(),
    info: { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description },
  };
}

async function webnnInfo() {
  if (!navigator.ml) return { present: false, context: false, reason: "navigator.ml is undefined" };
  try {
    await navigator.ml.createContext();
    return { present: true, context: true };
  } catch (e) {
    return { present: true, context: false, reason: `${e.name}: ${e.message}` };
  }
}

window.voptProbe = async function () {
  return {
    crossOriginIsolated: self.crossOriginIsolated,
    threads: ort.env.wasm.numThreads,
    userAgent: navigator.userAgent,
    ort: ort.env.versions,
    webgpu: await gpuInfo(),
    webnn: await webnnInfo(),
  };
};

// onnxruntime-web session options: the EP (with the artifact's recorded layout), its graph capture and the
// free-dimension overrides, plus what the caller adds (verbose logs for placement, profiling).
function ortOptions(ep, extra, freeDimensionOverrides, more) {
  const provider = extra.preferredLayout ? { name: ep, preferredLayout: extra.preferredLayout } : ep;
  const options = { executionProviders: [provider], graphOptimizationLevel: "all", ...more };
  if (extra.enableGraphCapture) options.enableGraphCapture = true;
  if (freeDimensionOverrides && Object.keys(freeDimensionOverrides).length) {
    options.freeDimensionOverrides = freeDimensionOverrides;
  }
  return options;
}

window.voptLoad = async function ({ key, url, ep, freeDimensionOverrides, sessionOptions }) {
  const t0 = performance.now();
  const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
  // Verbose session logs are how ORT tells which EP took each node; they are captured, not printed.
  const extra = sessionOptions || {};
  const options = ortOptions(ep, extra, freeDimensionOverrides, { logSeverityLevel: 0, logVerbosityLevel: 0 });
  capture = [];
  let session;
  try {
    session = await ort.InferenceSession.create(bytes, options);
  } finally {
    var placement = parsePlacement(capture);
    capture = null;
  }
  sessions.set(key, session);
  // Graph capture replays recorded GPU commands: onnxruntime-web then takes inputs only as GPU buffers on its
  // own device, and returns outputs as GPU buffers.
  if (extra.enableGraphCapture && ep === "webgpu") gpuFed.add(key);
  return {
    inputs: session.inputNames,
    outputs: session.outputNames,
    load_ms: performance.now() - t0,
    placement,
    input_location: gpuFed.has(key) ? "gpu-buffer" : "cpu",
  };
};

async function fetchInputs(feeds) {
  const inputs = {};
  for (const f of feeds) {
    const buf = await (await fetch(f.url)).arrayBuffer();
    const Arr = ARRAYS[f.type];
    if (!Arr) throw new Error(`unsupported input type ${f.type}`);
    inputs[f.name] = new ort.Tensor(f.type, new Arr(buf), f.dims);
  }
  return inputs;
}

// Graph capture records the buffers of the first run and replays on them: every run writes its inputs into
// the same GPU buffers (made once per session), rather than handing over new ones.
const gpuInputs = new Map(); // session key -> {name: ort.Tensor on a GPU buffer}
const registrations = new Map(); // session key -> {name: onnxruntime-web's registration record of that buffer}

// onnxruntime-web (1.30.0, still so in 1.31.1) registers a fed GPU buffer for one run and releases its wasm-side
// handle when the run ends, but a graph-captured session keeps the IO binding of its first run. The capture
// (the second run) then reads a released handle: undefined ("Failed to read the 'buffer' property from
// 'GPUBufferBinding'"), or another buffer once the slot is reused. ORT counts registrations in a symbol-keyed
// [handle, count] record it sets on the buffer; adding one count of our own when ORT sets it keeps the handle
// alive, and every later run reuses it. A prototype proxy sees that set without knowing ORT's private symbol.
function holdRegistration(gpu, held, name) {
  const proto = Object.getPrototypeOf(gpu);
  const trap = {
    set(target, prop, value, receiver) {
      if (receiver === gpu && typeof prop === "symbol" && Array.isArray(value) && typeof value[1] === "number") {
        value[1] += 1;
        held[name] = value;
      }
      return Reflect.set(target, prop, value, receiver);
    },
  };
  Object.setPrototypeOf(gpu, new Proxy(proto, trap));
}

// The handle each fed buffer ran on; a run that left one unregistered fails rather than risk a wrong replay.
function heldHandles(key) {
  const held = registrations.get(key) || {};
  const handles = {};
  for (const name of Object.keys(gpuInputs.get(key) || {})) {
    const record = held[name];
    if (!record || !(record[1] >= 1)) {
      throw new Error(
        `onnxruntime-web released the GPU buffer of input '${name}' after the run: ` +
          "graph capture would replay on a stale handle",
      );
    }
    handles[name] = record[0];
  }
  return handles;
}
async function toGpu(key, inputs) {
  const device = await ort.env.webgpu.device;
  const held = gpuInputs.get(key) || {};
  if (!registrations.has(key)) registrations.set(key, {});
  for (const [name, t] of Object.entries(inputs)) {
    const bytes = t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength);
    if (!held[name]) {
      const gpu = device.createBuffer({
        size: Math.ceil(bytes.byteLength / 16) * 16,
        usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC | GPUBufferUsage.STORAGE,
      });
      holdRegistration(gpu, registrations.get(key), name);
      held[name] = ort.Tensor.fromGpuBuffer(gpu, { dataType: t.type, dims: t.dims, dispose: () => gpu.destroy() });
    }
    device.queue.writeBuffer(held[name].gpuBuffer, 0, bytes);
  }
  gpuInputs.set(key, held);
  return held;
}

// One profiled session: `warmup` + `runs` inferences, then ORT's profiler events (kernel times per node).
window.voptProfile = async function ({ url, ep, freeDimensionOverrides, sessionOptions, feeds, runs, warmup }) {
  const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
  const options = ortOptions(ep, sessionOptions || {}, freeDimensionOverrides, { enableProfiling: true });
  profiled = [];
  let session;
  try {
    session = await ort.InferenceSession.create(bytes, options);
    const inputs = await fetchInputs(feeds);
    for (let i = 0; i < warmup; i++) await session.run(inputs);
    const t0 = performance.now();
    for (let i = 0; i < runs; i++) await session.run(inputs);
    const totalMs = (performance.now() - t0) / runs;
    session.endProfiling();
    return { events: profiled.slice(), total_ms: totalMs };
  } finally {
    profiled = null;
    if (session) await session.release();
  }
};

window.voptRun = async function ({ key, feeds, upload }) {
  const session = sessions.get(key);
  if (!session) throw new Error(`no session '${key}'`);
  let inputs = await fetchInputs(feeds);
  if (gpuFed.has(key)) inputs = await toGpu(key, inputs);
  const t0 = performance.now();
  const results = await session.run(inputs);
  const runMs = performance.now() - t0;
  const outputs = [];
  for (const name of session.outputNames) {
    const t = results[name];
    const data = t.location && t.location !== "cpu" ? await t.getData() : t.data;
    const body = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
    const res = await fetch(`${upload}/${encodeURIComponent(name)}`, { method: "POST", body });
    if (!res.ok) throw new Error(`upload of output ${name} failed: ${res.status}`);
    outputs.push({ name, dims: Array.from(t.dims), type: t.type });
    if (t.location === "gpu-buffer" && !gpuFed.has(key)) t.dispose();
  }
  if (gpuFed.has(key)) return { outputs, run_ms: runMs, input_handles: heldHandles(key) };
  return { outputs, run_ms: runMs };
};

window.voptRelease = async function ({ key }) {
  const session = sessions.get(key);
  if (session) {
    sessions.delete(key);
    gpuFed.delete(key);
    await session.release();
    // The held registrations' wasm-side handles (a few bytes each) outlive the destroyed buffers: the page has
    // no call that releases them.
    for (const t of Object.values(gpuInputs.get(key) || {})) t.dispose();
    gpuInputs.delete(key);
    registrations.delete(key);
  }
  return true;
};

document.getElementById("status").textContent = "ready";
window.voptReady = true;
