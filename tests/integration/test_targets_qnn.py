"""qnn: a u8 QDQ model on the QNN HTP simulator, compared with ORT CPU running the same QDQ model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import tiny_model

pytest.importorskip("onnxruntime_qnn")


def _export(write_recipe, family: str):
    """Load + export through the real pipeline steps (static shapes, as the qnn target asks)."""
    from vopt.core.cache import Cache
    from vopt.core.progress import QuietReporter
    from vopt.pipeline.plan import key_for, make_plan
    from vopt.pipeline.runner import _Env, _run_step
    from vopt.recipe.resolve import load_recipe

    path = write_recipe(
        {
            "name": f"q-{family}",
            "model": tiny_model(family),
            "compile": {"target": "qnn"},
            "export": {"parity": False},
        }
    )
    recipe = load_recipe(path).recipe
    steps, target = make_plan(recipe)
    env = _Env(recipe, target, Cache(), QuietReporter(), use_cache=True, debug=False)
    art = None
    for step in steps:
        if step.name not in ("load", "fuse", "prune", "export"):
            continue
        key = key_for(step, art.sha256 if art else None, target)
        art, _, _ = _run_step(step, art, key, env)
    return recipe, target, art


def _qdq_u8(src: str, dst: str, shape: list[int], exclude_ops: tuple[str, ...] = ()) -> None:
    """QNN QDQ (u8 activations, u8 weights) with onnxruntime's QNN config, calibrated on real images."""
    import shutil

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config, qnn_preprocess_model

    from vopt.core.artifact import Preprocess
    from vopt.datasets.images import load_batch

    proto = onnx.load(src)
    del proto.metadata_props[:]  # qnn_preprocess_model chokes on metadata_props (onnxruntime 1.32)
    plain = dst + ".plain.onnx"
    onnx.save(proto, plain)
    pre = dst + ".pre.onnx"
    if not qnn_preprocess_model(plain, pre):
        shutil.copy(plain, pre)
    images = load_batch(None, Preprocess(size=shape[2:]), 8)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"pixel_values": images[i : i + 1]} for i in range(len(images))])

        def get_next(self):
            return next(self.items, None)

    excluded = [n.name for n in onnx.load(pre).graph.node if n.op_type in exclude_ops]
    cfg = get_qnn_qdq_config(
        pre,
        Reader(),
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QUInt8,
        nodes_to_exclude=excluded or None,
    )
    quantize(pre, dst, cfg)


def _ctx(recipe, target, workdir):
    """What the compile stage hands the target: the build's name and the model input, from its config."""
    from vopt.core.context import Context

    return Context(target=target, workdir=workdir, build_name=recipe.name, model_input=recipe.model.input)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["resnet", "vit"])
def test_qnn_u8_runs_on_htp_simulator(write_recipe, tmp_path, family):
    import onnx

    from vopt.datasets.images import load_batch
    from vopt.runtimes.ort import runner as ort_runner

    recipe, target, exported = _export(write_recipe, family)
    qdq = str(tmp_path / "qdq.onnx")
    _qdq_u8(exported.path, qdq, recipe.model.input.shape)
    quantized = exported.derive(qdq, format="onnx")
    cfg = target.Config(target="qnn", disable_cpu_fallback=True)
    work = tmp_path / "work"
    work.mkdir()
    ctx = _ctx(recipe, target, work)
    art = target.compile(quantized, cfg, ctx)
    rep = ctx.report
    assert rep["qdq"]["activation_types"] == ["uint8"]
    where = rep["placement"]
    # The whole graph went to QNN: no CPU fallback, one HTP partition.
    assert where["cpu_nodes"] == 0 and where["cpu_io_qdq"] == 0 and where["qnn_partitions"] == 1
    assert where["qnn_nodes"] == where["graph_nodes"] > 10
    assert json.loads(dict((p.key, p.value) for p in onnx.load(art.path).metadata_props)["vopt.preprocess"])[
        "size"
    ] == [64, 64]

    run = target.runner(art, cfg)
    assert run.runtime == "qnn-htp" and "simulator" in run.info["backend"]
    assert run.info["placement"]["cpu_nodes"] == 0
    images = load_batch(None, art.preprocess, 6)
    cpu = ort_runner(art.path)
    # The logits' output DequantizeLinear scale is one quantization step.
    proto = onnx.load(art.path)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    last_dq = next(n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == "logits")
    step = float(inits[last_dq.input[1]])
    fp32 = ort_runner(exported.path)
    htp, ref, flt = (
        np.concatenate([r({"pixel_values": images[i : i + 1]})["logits"] for i in range(len(images))])
        for r in (run, cpu, fp32)
    )
    from vopt.validate.metrics import centered_cosine

    diff = float(np.abs(htp - ref).max())
    quant_err = float(np.abs(ref - flt).max())
    print(
        f"{family}: HTP vs ORT-CPU QDQ max diff {diff:.4g} ({diff / step:.1f} output steps), "
        f"ORT-CPU QDQ vs fp32 {quant_err:.4g}, range {float(ref.max() - ref.min()):.4g}, "
        f"centered cosine HTP/CPU {centered_cosine(ref, htp):.4f}, HTP/fp32 {centered_cosine(flt, htp):.4f}, "
        f"CPU/fp32 {centered_cosine(flt, ref):.4f}"
    )
    # Within quantization tolerance: HTP differs from ORT-CPU's QDQ by less than quantization itself moves
    # the output, and its accuracy against fp32 matches ORT-CPU's.
    assert diff < quant_err
    assert centered_cosine(ref, htp) > 0.99
    assert abs(centered_cosine(flt, htp) - centered_cosine(flt, ref)) < 0.005


@pytest.mark.slow
def test_qnn_cpu_fallback_is_counted_and_gated(write_recipe, tmp_path):
    """An op the QNN EP does not take (float Mod after the logits) runs on CPU: placement counts it, and
    disable_cpu_fallback turns it into a build error naming the op."""
    import onnx
    from onnx import helper, numpy_helper

    from vopt.errors import BuildError

    recipe, target, exported = _export(write_recipe, "resnet")
    qdq = str(tmp_path / "qdq.onnx")
    _qdq_u8(exported.path, qdq, recipe.model.input.shape)
    proto = onnx.load(qdq)
    for node in proto.graph.node:
        node.output[:] = ["logits_pre" if o == "logits" else o for o in node.output]
    proto.graph.initializer.append(numpy_helper.from_array(np.array(3.0, np.float32), "three"))
    proto.graph.node.append(helper.make_node("Mod", ["logits_pre", "three"], ["logits"], fmod=1, name="mod0"))
    onnx.save(proto, tmp_path / "partial.onnx")
    partial = exported.derive(tmp_path / "partial.onnx", format="onnx")
    (tmp_path / "a").mkdir()
    ctx = _ctx(recipe, target, tmp_path / "a")
    target.compile(partial, target.Config(target="qnn"), ctx)
    where = ctx.report["placement"]
    assert where["cpu_ops"] == {"Mod": 1} and where["cpu_nodes"] == 1
    assert where["qnn_nodes"] == where["graph_nodes"] - 1 - where["cpu_io_qdq"]
    assert "1 on CPU" in ctx.report["summary"]
    (tmp_path / "b").mkdir()
    with pytest.raises(BuildError, match=r"disable_cpu_fallback: 1 node\(s\) .*Mod x1"):
        target.compile(
            partial,
            target.Config(target="qnn", disable_cpu_fallback=True),
            _ctx(recipe, target, tmp_path / "b"),
        )


@pytest.mark.slow
def test_qnn_epcontext_for_soc_model(write_recipe, tmp_path):
    """soc_model precompiles a QNN context binary into an EPContext model that runs like the QDQ model."""
    import onnx

    from vopt.datasets.images import load_batch

    recipe, target, exported = _export(write_recipe, "resnet")
    qdq = str(tmp_path / "qdq.onnx")
    _qdq_u8(exported.path, qdq, recipe.model.input.shape)
    cfg = target.Config(target="qnn", soc_model="60", htp_arch=73)
    (tmp_path / "w").mkdir()
    ctx = _ctx(recipe, target, tmp_path / "w")
    art = target.compile(exported.derive(qdq, format="onnx"), cfg, ctx)
    assert art.format == "qnn-context"
    proto = onnx.load(art.path)
    assert [n.op_type for n in proto.graph.node].count("EPContext") == 1
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["vopt.qnn.soc_model"] == "60" and meta["vopt.target"] == "qnn"
    images = load_batch(None, art.preprocess, 2)
    plain = target.runner(exported.derive(qdq, format="onnx"), cfg)
    ctx_run = target.runner(art, cfg)
    for i in range(2):
        feeds = {"pixel_values": images[i : i + 1]}
        np.testing.assert_allclose(ctx_run(feeds)["logits"], plain(feeds)["logits"], atol=1e-6)

    # embed_context: false -> a directory with the EPContext model and its context binary beside it.
    cfg = target.Config(target="qnn", soc_model="60", embed_context=False)
    (tmp_path / "x").mkdir()
    art = target.compile(exported.derive(qdq, format="onnx"), cfg, _ctx(recipe, target, tmp_path / "x"))
    files = sorted(p.name for p in (tmp_path / "x" / "qnn_context").iterdir())
    assert art.format == "qnn-context" and art.path.endswith("qnn_context") and "model_ctx.onnx" in files
    assert any(f.endswith(".bin") for f in files)
    feeds = {"pixel_values": images[:1]}
    np.testing.assert_allclose(target.runner(art, cfg)(feeds)["logits"], plain(feeds)["logits"], atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize(("precision", "act"), [("int8", "uint8"), ("int16", "uint16")])
def test_qnn_full_build_with_quantize_stage(write_recipe, cli, tmp_path, precision, act):
    """`vopt build`: the quantize stage's qnn-qdq scheme (u8 / u16) -> qnn compile -> validation on the HTP
    simulator."""
    recipe = write_recipe(
        {
            "name": "qnn-full",
            "model": tiny_model("resnet"),
            "export": {"parity_samples": 2},
            "quantize": {
                "precision": precision,
                "calibration": {"samples": 16},
                "check": {"samples": 4, "benchmark": False},
            },
            "compile": {"target": "qnn", "disable_cpu_fallback": True},
            "validate": {"samples": 6, "gates": {"centered_cosine": ">=0.9"}},
        }
    )
    result = cli("build", recipe, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    assert [s["stage"] for s in m["steps"]] == ["load", "export", "quantize", "compile", "validate"]
    comp = next(s for s in m["steps"] if s["stage"] == "compile")["report"]
    assert comp["qdq"]["activation_types"] == [act]
    # labelled by what it is: int16 QDQ used to be labelled with the target's default int8
    assert m["artifact"]["meta"]["precision"] == precision
    shown = json.loads(cli("inspect", tmp_path / "out" / "qnn-full", "--json").stdout)
    assert shown["metadata"]["vopt.precision"] == precision
    v = m["validation"]
    assert v["runtime"] == "qnn-htp" and v["runtime_info"]["disable_cpu_fallback"] is True
    where = v["runtime_info"]["placement"]
    assert where["cpu_nodes"] == 0 and where["qnn_nodes"] == where["graph_nodes"]
    cc = v["metrics"]["logits"]["centered_cosine"]
    print(f"qnn full build {act}: centered cosine vs PyTorch {cc:.4f}, {where['qnn_nodes']} nodes on QNN")
    assert 0.9 < cc < 0.99999


@pytest.mark.slow
def test_qnn_int16_islands_stay_on_the_htp(write_recipe, cli, tmp_path):
    """fallback_to: int16 on qnn-qdq keeps the fallback's layers quantized with u16 activations inside the u8
    model (onnxruntime's mixed-precision fixer places the u8<->u16 converts). The gate that plain u8 missed
    holds, every node still runs on the HTP simulator (a float layer would leave it for the CPU), and a
    written-back recipe rebuilds the same bytes."""
    import onnx
    import yaml

    recipe = write_recipe(
        {
            "name": "qnn-mixed",
            "model": tiny_model("resnet"),
            "export": {"parity_samples": 2},
            "quantize": {
                "gates": {"centered_cosine": ">=0.994"},
                "auto_fallback": True,
                "max_float_fraction": 1.0,
                "fallback_step": 2,
                "options": {"fallback_to": "int16"},
                "calibration": {"samples": 16},
                "check": {"samples": 8, "benchmark": False},
            },
            "compile": {"target": "qnn", "disable_cpu_fallback": True},
            "validate": {"samples": 4},
        }
    )
    result = cli("build", recipe, "--out", tmp_path / "out", "--json", "--write-back")
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    step = next(s for s in m["steps"] if s["stage"] == "quantize")
    fb = step["report"]["fallback"]
    assert fb["to"] == "int16" and fb["converged"] and fb["kept_int16"] and not fb.get("kept_float")
    first, last = fb["rounds"][0]["centered_cosine"], fb["rounds"][-1]["centered_cosine"]
    print(f"qnn u16 islands: {len(fb['kept_int16'])} layers, centered cosine {first:.4f} -> {last:.4f}")
    assert first < 0.994 <= last
    from vopt.core.cache import Cache

    entry = Cache(Path(os.environ["VOPT_CACHE_DIR"])).get(step["key"])
    assert entry is not None
    model = onnx.load(entry.artifact.path)
    inits = {i.name: i for i in model.graph.initializer}
    zp_types = {
        onnx.numpy_helper.to_array(inits[n.input[2]]).dtype
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits
    }
    assert {np.dtype(np.uint8), np.dtype(np.uint16)} <= zp_types
    where = m["validation"]["runtime_info"]["placement"]
    assert m["validation"]["runtime"] == "qnn-htp" and where["cpu_nodes"] == 0
    written = yaml.safe_load(recipe.read_text())["quantize"]["options"]
    assert written["int16_nodes"] == fb["kept_int16"]
    again = cli("build", recipe, "--out", tmp_path / "out2", "--json")
    assert again.exit_code == 0, again.output
    rebuilt = next(s for s in json.loads(again.stdout)["steps"] if s["stage"] == "quantize")
    assert "fallback" not in rebuilt["report"] and rebuilt["output_sha256"] == step["output_sha256"]
