"""`onnx`: start from an ONNX file. The load stage copies it; fuse, prune and export do not run."""

from __future__ import annotations

from pathlib import Path

from vopt.errors import BuildError, RecipeError, first_line
from vopt.models.sources.base import LoadedModel, Source, _stat_fingerprint
from vopt.models.sources.plain import family_of_spec
from vopt.models.sources.torchscript import _file


class OnnxSource(Source):
    name = "onnx"
    output_format = "onnx"

    def load(self, spec) -> LoadedModel:
        if spec.components:  # several ONNX files that run in order: one component each
            family = family_of_spec(spec)
            whole = LoadedModel(None, family, spec.task or family.task, labels=spec.labels)
            for name, part in spec.components.items():
                path = _component_file(name, part.path)
                check_onnx(path)
                fam = (
                    family_of_spec(spec.model_copy(update={"family": part.family})) if part.family else family
                )
                whole.components[name] = LoadedModel(
                    None, fam, spec.task or fam.task, labels=spec.labels, onnx_path=path, component=name
                )
            whole.notes.append(
                f"{len(spec.components)} ONNX components: torch stages (fuse, prune, export) skipped"
            )
            return whole
        path = _file(spec, "ONNX (.onnx)")
        check_onnx(path)
        family = family_of_spec(spec)
        return LoadedModel(
            None,
            family,
            spec.task or family.task,
            labels=spec.labels,
            onnx_path=path,
            notes=[f"ONNX {path.name}: torch stages (fuse, prune, export) skipped"],
        )

    def fingerprint(self, spec) -> dict:
        out = super().fingerprint(spec)
        files = {"path": spec.path, **{f"components.{n}": p.path for n, p in (spec.components or {}).items()}}
        for key, value in files.items():
            path = Path(value).expanduser() if value else None
            if path is None or not path.is_file():
                continue
            if key != "path":
                out[key] = _stat_fingerprint(path)
            # Weights in external-data files (every model over 2 GB) are part of the model: edit one and the
            # load step must run again, though the .onnx file itself is unchanged.
            for extra in _external_data(path):
                out[f"{key}:{extra.name}"] = _stat_fingerprint(extra)
        return out


def _component_file(name: str, value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_file():
        raise RecipeError(f"model.components.{name}.path: file not found: {path}")
    return path


def check_onnx(path: Path) -> None:
    """Fail early, in one line, on a truncated or foreign file."""
    import onnx

    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise BuildError(
            f"{path} is not a valid ONNX model (truncated or corrupt?): "
            f"{first_line(exc, limit=200, with_type=True)}",
            stage="load",
        ) from None
    if not proto.graph.input or not proto.graph.output:
        raise BuildError(f"{path}: the ONNX graph has no inputs or no outputs", stage="load")


def _external_data(path: Path) -> list[Path]:
    """The external-data files an ONNX model points at that exist (reading the graph, not the weights)."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - a truncated or foreign file: check_onnx names it at load
        return []
    names: dict[str, None] = {}
    for tensor in onnx.external_data_helper._get_all_tensors(proto):
        if uses_external_data(tensor):
            names.setdefault(ExternalDataInfo(tensor).location, None)
    return [path.parent / n for n in names if n and (path.parent / n).is_file()]
