"""Adding a target is one module and one entry point (docs/adding-a-target.md): a toy target from a module
outside vopt, registered before vopt builds its recipe model, plans, builds, and is validated on its runtime.

It runs in a child process because the recipe's `compile:` union is made from the registry when
vopt.recipe.models is first imported, as it would be for a target shipped in vopt itself."""

from __future__ import annotations

import json
import textwrap

import yaml

from tests.conftest import tiny_model
from tests.contract.plugin_driver import vopt_with

TOY = textwrap.dedent('''
    """toy-ort: the exported ONNX as it is, with vopt's metadata, run on ONNX Runtime CPU."""

    from __future__ import annotations

    from typing import Literal

    from pydantic import Field

    from vopt.targets.base import CompileBase, Target


    class ToyConfig(CompileBase):
        target: Literal["toy-ort"] = "toy-ort"
        note: str = Field(default="", description="Free text carried into the report.")


    class ToyOrtTarget(Target):
        name = "toy-ort"
        Config = ToyConfig
        runtime_name = "onnxruntime"
        description = "the ONNX as exported, on ONNX Runtime's CPU EP"

        def compile(self, artifact, cfg, ctx):
            import onnx

            from vopt.targets.metadata import artifact_metadata, effective_precision, set_onnx_metadata

            self.check_format(artifact)
            proto = onnx.load(artifact.path)
            precision = effective_precision(artifact, self.precision(cfg))
            set_onnx_metadata(proto, artifact_metadata(artifact, ctx.build_name, self.name, precision))
            path = ctx.out("model.onnx")
            onnx.save(proto, str(path))
            ctx.report["summary"] = f"toy: {len(proto.graph.node)} nodes, {cfg.note}"
            return artifact.derive(path, format="onnx", meta={"precision": precision})

        def runner(self, artifact, cfg):
            from vopt.runtimes.ort import runner

            return runner(artifact.path, label="onnxruntime-cpu")
''')

REGISTRY_LINE = 'registry.TARGETS["toy-ort"] = "toy_target:ToyOrtTarget"'


def test_a_toy_target_plugin_plans_builds_and_validates(tmp_path):
    (tmp_path / "toy_target.py").write_text(TOY)
    recipe = tmp_path / "toy.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "toy",
                "model": tiny_model("resnet"),
                "compile": {"target": "toy-ort", "note": "hello"},
                "validate": {"samples": 4},
            }
        )
    )
    plan = vopt_with(tmp_path, REGISTRY_LINE, "plan", recipe)
    assert plan.returncode == 0, plan.stderr
    assert "toy-ort" in plan.stdout + plan.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(recipe.read_text().replace("note: hello", "nope: 1"))
    checked = vopt_with(tmp_path, REGISTRY_LINE, "check", bad)
    assert (
        checked.returncode == 2 and "compile.nope" in checked.stdout + checked.stderr
    )  # its Config, file:line
    build = vopt_with(tmp_path, REGISTRY_LINE, "build", recipe, "--out", tmp_path / "out", "--json")
    assert build.returncode == 0, build.stderr
    manifest = json.loads(build.stdout)
    compile_step = next(s for s in manifest["steps"] if s["stage"] == "compile")
    assert (
        compile_step["report"]["summary"].startswith("toy: ") and "hello" in compile_step["report"]["summary"]
    )
    assert manifest["validation"]["runtime"] == "onnxruntime-cpu"
    assert manifest["validation"]["metrics"]["logits"]["cosine"] > 0.9999  # fp32 on ORT vs PyTorch
