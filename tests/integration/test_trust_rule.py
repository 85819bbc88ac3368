"""The trust rule (docs/reliability.md, "What runs code"): a recipe is code and may name Python callables;
the files it points at and every cache entry are data and run no code unless the recipe says `trust: true`
for that file. Each test is a probe from issue 29 that ran its payload before the rule was enforced."""

from __future__ import annotations

import io
import json
import os
import uuid
import zipfile
from pathlib import Path

import pytest
import torch

NET = """
import torch.nn as nn


def build(width=4):
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(width, 5),
    )
"""
SHAPE = [1, 3, 32, 32]


class _Payload:
    """Unpickling it runs a shell command that creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _program(path: Path) -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten()).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(net, (torch.randn(2, *SHAPE[1:]),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))


def _with_pickled_sample_inputs(src: Path, dst: Path, marker: Path) -> None:
    """The same archive, its sample inputs replaced by a pickle whose payload creates `marker`."""
    buf = io.BytesIO()
    torch.save(_Payload(marker), buf)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if "/data/sample_inputs/" in info.filename:
                data = buf.getvalue()
            zout.writestr(info, data)


def _entry(cache: Path, key: str) -> Path:
    return cache / key[:2] / key


def _reseal(entry: Path, edit) -> None:
    """Edit an entry's entry.json and make it consistent again, as someone with write access to a shared
    cache can: file hashes, the artifact's sha256 and the entry's own seal recomputed."""
    from vopt.core.artifact import hash_file
    from vopt.core.cache import write_entry

    data = json.loads((entry / "entry.json").read_text())
    edit(data)
    data["files"] = {
        str(p.relative_to(entry)): {"sha256": hash_file(p), "size": p.stat().st_size}
        for p in sorted(entry.rglob("*"))
        if p.is_file() and p.name != "entry.json"
    }
    rel = data["artifact"]["path"].removeprefix("@entry/")
    data["artifact"]["sha256"] = data["files"][rel]["sha256"]
    write_entry(entry / "entry.json", data)


def _build(cli, recipe: Path, out: Path):
    return cli("build", recipe, "--out", out, "--json")


def test_a_pt2_whose_sample_inputs_are_pickled_runs_nothing_without_trust(cli, write_recipe, tmp_path):
    marker = tmp_path / "pwned"
    _program(tmp_path / "net.pt2")
    _with_pickled_sample_inputs(tmp_path / "net.pt2", tmp_path / "evil.pt2", marker)
    model = {"source": "exported", "path": str(tmp_path / "evil.pt2"), "input": {"shape": SHAPE}}
    refused = _build(cli, write_recipe({"name": "pt2", "model": model, "validate": None}), tmp_path / "out")
    assert refused.exit_code == 2, refused.output
    assert "evil.pt2 holds pickled objects beyond tensors (it names posix.system" in refused.output
    assert "model.trust: true" in refused.output and "Traceback" not in refused.output
    assert not marker.exists()
    # trust: true is the recipe's word for this file: torch.export.load then runs it as it is
    trusted = {**model, "trust": True}
    _build(cli, write_recipe({"name": "pt2", "model": trusted, "validate": None}), tmp_path / "out")
    assert marker.exists()


def test_a_pt2_whose_shape_expression_is_python_runs_nothing_without_trust(cli, write_recipe, tmp_path):
    """torch.export.load evaluates every symbolic shape with sympy.sympify, which is Python's eval."""
    marker = tmp_path / "pwned"
    _program(tmp_path / "net.pt2")
    with zipfile.ZipFile(tmp_path / "net.pt2") as zin, zipfile.ZipFile(tmp_path / "sym.pt2", "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("models/model.json"):
                text = data.decode()
                first = text.index("Symbol(")
                end = text.index('"', first)
                data = (text[:first] + f"__import__('os').system('touch {marker}')" + text[end:]).encode()
            zout.writestr(info, data)
    model = {"source": "exported", "path": str(tmp_path / "sym.pt2"), "input": {"shape": SHAPE}}
    refused = _build(cli, write_recipe({"name": "pt2", "model": model, "validate": None}), tmp_path / "out")
    assert refused.exit_code == 2, refused.output
    assert "sym.pt2 has a shape expression that names '__import__'" in refused.output
    assert not marker.exists()


def test_a_cached_reference_naming_another_callable_is_rebuilt_not_run(
    cli, write_recipe, tmp_path, monkeypatch, _isolated_cache
):
    name = f"trustnet_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    recipe = write_recipe(
        {
            "name": "ref",
            "model": {
                "source": "python",
                "arch": f"{name}:build",
                "weights": "random",
                "input": {"shape": SHAPE},
            },
            "validate": None,
        }
    )
    first = _build(cli, recipe, tmp_path / "out")
    assert first.exit_code == 0, first.output
    load_key = json.loads(first.stdout)["steps"][0]["key"]
    marker = tmp_path / "pwned"

    def point_at_os_system(data):
        build = data["artifact"]["meta"]["module_ref"]["build"]
        build["arch"], build["kwargs"] = "torch:os.system", {"command": f"touch {marker}"}

    _reseal(_entry(_isolated_cache, load_key), point_at_os_system)
    again = _build(cli, recipe, tmp_path / "out")
    assert again.exit_code == 0, again.output
    assert not marker.exists()
    assert f"cache entry {load_key[:12]} discarded and rebuilt" in again.output
    assert "names 'torch:os.system'" in again.output
    steps = {s["stage"]: s["cached"] for s in json.loads(again.stdout)["steps"]}
    assert steps == {"load": False, "export": True, "compile": True}  # rebuilt the same: the rest still hits


def test_a_cached_reference_is_rebuilt_only_under_a_recipe_that_names_it(tmp_path):
    from vopt.errors import BuildError
    from vopt.models import store
    from vopt.models.sources.factory import build_policy
    from vopt.recipe.sections.model import ModelSection

    marker = tmp_path / "pwned"
    ref = {"kind": "factory", "arch": "torch:os.system", "kwargs": {"command": f"touch {marker}"}}
    with pytest.raises(BuildError, match="rebuilt only in a build of the recipe that names it"):
        store.build(ref)  # outside a build: no recipe names anything
    other = ModelSection(source="python", arch="mynets:build")
    with build_policy(None, True, other), pytest.raises(BuildError, match="which the recipe does not"):
        store.build(ref)  # trust does not help: the recipe names another callable
    assert not marker.exists()


def test_a_cached_pt2_with_pickled_sample_inputs_is_rebuilt_not_run(
    cli, write_recipe, tmp_path, _isolated_cache
):
    marker = tmp_path / "pwned"
    _program(tmp_path / "net.pt2")
    _with_pickled_sample_inputs(tmp_path / "net.pt2", tmp_path / "evil.pt2", marker)
    model = {"source": "exported", "path": str(tmp_path / "net.pt2"), "input": {"shape": SHAPE}}
    recipe = write_recipe({"name": "pt2", "model": model, "validate": None})
    first = _build(cli, recipe, tmp_path / "out")
    assert first.exit_code == 0, first.output
    load_key = json.loads(first.stdout)["steps"][0]["key"]
    entry = _entry(_isolated_cache, load_key)
    (entry / "payload" / "model.pt2").write_bytes((tmp_path / "evil.pt2").read_bytes())
    _reseal(entry, lambda data: None)
    again = _build(cli, recipe, tmp_path / "out")
    assert again.exit_code == 0, again.output
    assert not marker.exists()
    assert "its fixed graph is not the file the recipe names" in again.output


def test_load_module_never_unpickles_a_cached_pt2(tmp_path):
    from vopt.core.artifact import Artifact
    from vopt.errors import BuildError
    from vopt.models.resolve import load_module

    marker = tmp_path / "pwned"
    _program(tmp_path / "net.pt2")
    _with_pickled_sample_inputs(tmp_path / "net.pt2", tmp_path / "model.pt2", marker)
    art = Artifact(
        path=str(tmp_path / "model.pt2"), format="torch-module", meta={"module_format": "exported"}
    )
    with pytest.raises(BuildError, match="holds pickled objects beyond tensors"):
        load_module(art)
    assert not marker.exists()
