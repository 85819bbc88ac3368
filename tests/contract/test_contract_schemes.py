"""Every registered quantization scheme keeps the plugin contract, and makes a tiny model end to end.
A scheme registered without a working tiny run fails here (or skips, naming the missing backend)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import pytest
from pydantic import BaseModel

from tests.conftest import REPO, tiny_model
from vopt.quant.schemes.base import RankingOptions, Scheme, SchemeOptions
from vopt.registry import FORMATS, SCHEMES, TARGETS, get_scheme, get_target

HEAVY = ("torch", "onnx", "onnxruntime", "openvino", "nncf", "coremltools", "transformers", "numpy")


@pytest.mark.parametrize("name", list(SCHEMES))
def test_scheme_declares_its_facts(name):
    s = get_scheme(name)
    assert issubclass(s, Scheme) and s.name == name
    assert s.precisions and set(s.default_for) <= set(s.precisions) and set(s.types) <= set(s.precisions)
    assert s.output_format in FORMATS and set(s.input_formats) <= set(FORMATS)
    assert all(len(r) == 3 and all(isinstance(x, str) and x for x in r) for r in s.requires)
    assert issubclass(s.Options, SchemeOptions) and s.Options.model_config.get("extra") == "forbid"
    # the fallback's targets are declared once, and only where the fallback can rank layers
    assert bool(s.fallback_precisions) == s.ranks_layers
    if s.ranks_layers:
        assert issubclass(s.Options, RankingOptions) and "float" in s.fallback_precisions
        allowed = RankingOptions.model_fields["fallback_to"].annotation.__args__
        assert set(s.fallback_precisions) <= set(allowed)
    s.Options()  # every option has a default: a recipe may leave `options:` out
    # quantize.search: a ranking scheme's layers are probed on its own QDQ graph or on its QDQ proxy, and the
    # alternatives it declares are values of its own options
    if s.ranks_layers:
        assert s.qdq_output or s.qdq_proxy is not Scheme.qdq_proxy
    for alt in s.search_settings:
        s.Options.model_validate(alt)


@pytest.mark.parametrize("name", list(SCHEMES))
def test_a_scheme_whose_defaults_read_the_host_declares_host_facts(name):
    """A default read from the build machine (`cfg.host`: VNNI or not) must come from `host_facts`, which puts
    the fact into the quantize step's cache key: a cache shared by a VNNI machine and one without must never
    hand one CPU's choice to the other."""
    import inspect

    s = get_scheme(name)
    reads = [c.__name__ for c in s.__mro__ if issubclass(c, Scheme) and "cfg.host" in inspect.getsource(c)]
    if reads:
        assert s.host_facts.__func__ is not Scheme.host_facts.__func__, f"{reads} read cfg.host"


def test_at_most_one_scheme_owns_a_precision():
    owners: dict[str, list[str]] = {}
    for name in SCHEMES:
        for p in get_scheme(name).default_for:
            owners.setdefault(p, []).append(name)
    assert all(len(v) == 1 for v in owners.values()), owners


def test_targets_name_registered_schemes():
    for t in TARGETS:
        target = get_target(t)
        for scheme in (target.quant_scheme, target.int8_scheme):
            assert scheme is None or scheme in SCHEMES, (t, scheme)


def test_scheme_modules_import_nothing_heavy():
    code = (
        "import sys; from vopt.registry import SCHEMES, get_scheme; [get_scheme(n) for n in SCHEMES];"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"heavy modules imported by scheme facts: {out.stdout}"


def _target_for(name: str) -> str | None:
    """An available target for the scheme: the first whose own scheme it is, else one that compiles what the
    scheme writes (trt-qdq's ONNX runs on cpu where TensorRT cannot be installed)."""
    fmt = get_scheme(name).output_format
    own = [t for t in TARGETS if get_target(t).quant_scheme == name]
    takes = [
        t for t in TARGETS if fmt in get_target(t).input_formats and not get_target(t).quantize_after_compile
    ]
    return next((t for t in [*own, *takes] if get_target(t).available()[0]), None)


def _tiny_quantize(scheme: str, precision: str, **extra) -> dict:
    return {
        "scheme": scheme,
        "precision": precision,
        "calibration": {"samples": 4, "batch": 2},
        "check": {"samples": 2, "benchmark": False},
        # The contract is that the scheme runs end to end; 4 calibration images on a tiny random model say
        # nothing about accuracy, so the task's default gates are off (they are tested in test_heldout_gates).
        "default_gates": False,
        **extra,
    }


@pytest.mark.parametrize("name", list(SCHEMES))
def test_scheme_quantizes_a_tiny_model_end_to_end(name, write_recipe, cli, tmp_path):
    s = get_scheme(name)
    missing = [dist for module, dist, _ in s.requires if importlib.util.find_spec(module) is None]
    if missing:
        pytest.skip(f"{name} needs {', '.join(missing)}, not installed here")
    target = _target_for(name)
    if target is None:
        pytest.skip(f"no target that takes what {name} writes is available here")
    precision = s.precisions[0]
    recipe = write_recipe(
        {
            "name": f"s-{name}",
            "model": tiny_model("resnet"),
            "compile": {"target": target},
            "quantize": _tiny_quantize(name, precision),
            "validate": None,
        }
    )
    res = cli("build", recipe, "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    manifest = json.loads(res.stdout)
    report = next(st for st in manifest["steps"] if st["stage"] == "quantize")["report"]
    assert report["scheme"] == name and report["precision"] == precision
    assert report["calibration"]["samples"] == 4 if s.calibrates else "calibration" not in report
    # coreml-weights writes an .mlpackage, which only macOS can run: its check says so instead of a number
    if report["check"]["status"] == "ok":
        assert report["check"]["worst"]["cosine"] > 0.9
    else:
        assert s.output_format == "coreml-mlpackage" and sys.platform != "darwin", report["check"]
    assert manifest["artifact"]["meta"]["precision"] == precision


TOY = textwrap.dedent('''
    """ort-dynamic: onnxruntime's dynamic int8 quantization. Weights are stored int8; activations are
    quantized at run time from their own range, so there is nothing to calibrate."""

    from __future__ import annotations

    from pathlib import Path

    from pydantic import Field

    from vopt.quant.schemes.base import QuantTypes, Scheme, SchemeOptions, quiet_logs


    class DynamicOptions(SchemeOptions):
        op_types: list[str] = Field(default_factory=lambda: ["MatMul"], description="Op types to quantize.")


    class DynamicInt8Scheme(Scheme):
        name = "ort-dynamic"
        precisions = ("int8",)
        types = {"int8": QuantTypes(activation="uint8", weight="int8", per_channel=False)}
        calibrates = False
        Options = DynamicOptions

        def quantize(self, model: Path, exclude_nodes: list[str], out: Path) -> Path:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            with quiet_logs():
                quantize_dynamic(str(model), str(out), op_types_to_quantize=self.options.op_types,
                                 per_channel=self.cfg.per_channel, weight_type=QuantType.QInt8,
                                 nodes_to_exclude=exclude_nodes)
            return out
''')


@pytest.fixture
def toy_scheme(tmp_path, monkeypatch):
    """docs/adding-a-scheme.md's worked example, a module outside vopt, in the table its entry point fills."""
    (tmp_path / "toy_scheme.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(SCHEMES, "ort-dynamic", "toy_scheme:DynamicInt8Scheme")
    yield "ort-dynamic"
    sys.modules.pop("toy_scheme", None)


def test_a_toy_scheme_plugin_builds_end_to_end(toy_scheme, write_recipe, cli, tmp_path):
    import onnx

    recipe = write_recipe(
        {
            "name": "toy",
            "model": tiny_model("vit"),
            "compile": {"target": "cpu"},
            "quantize": _tiny_quantize(toy_scheme, "int8", options={"op_types": ["MatMul"]}),
            "validate": {"samples": 4},
        }
    )
    res = cli("build", recipe, "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    manifest = json.loads(res.stdout)
    report = next(st for st in manifest["steps"] if st["stage"] == "quantize")["report"]
    assert report["scheme"] == "ort-dynamic" and "calibration" not in report
    assert report["settings"]["per_channel"] is False  # the scheme's declared default
    assert report["check"]["worst"]["cosine"] > 0.99
    ops = sorted({n.op_type for n in onnx.load(str(tmp_path / "out" / "toy" / "model.onnx")).graph.node})
    assert "DynamicQuantizeMatMul" in ops or "MatMulInteger" in ops, ops  # really quantized, the dynamic way
    # vs PyTorch, on the compiled artifact
    assert manifest["validation"]["metrics"]["logits"]["cosine"] > 0.99


def test_a_toy_scheme_options_are_checked_at_their_line(toy_scheme, write_recipe, cli):
    recipe = write_recipe(
        {
            "name": "toy",
            "model": tiny_model("vit"),
            "quantize": {"scheme": toy_scheme, "options": {"op_type": ["MatMul"]}},
        }
    )
    res = cli("check", recipe)
    assert res.exit_code == 2, res.output
    line = next(n for n, text in enumerate(recipe.read_text().splitlines(), 1) if "op_type:" in text)
    expected = f"recipe.yaml:{line}: quantize.options.op_type: unknown option (did you mean `op_types`?)"
    assert expected in res.output


def test_options_model_is_pydantic_and_strict():
    opts = get_scheme("int4-weight").Options
    assert issubclass(opts, BaseModel)
    with pytest.raises(ValueError):
        opts(symmetric=1)  # strict: 1 is not true
