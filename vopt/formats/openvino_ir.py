"""`openvino-ir`: an OpenVINO IR directory (model.xml + model.bin), run on OpenVINO here."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from vopt.core.artifact import Artifact, IOSpec, TensorSpec, path_size
from vopt.formats.base import Format

NAME = "openvino-ir"


class OpenVinoIrFormat(Format):
    name: ClassVar[str] = NAME
    description: ClassVar[str] = "OpenVINO IR"
    suffixes: ClassVar[tuple[str, ...]] = (".xml",)
    runtime_module: ClassVar[str | None] = "vopt.runtimes.openvino"
    runtime_import: ClassVar[str | None] = "openvino"
    runtime_name: ClassVar[str | None] = "openvino"
    check_label: ClassVar[str | None] = "openvino-cpu (f32 hint)"
    profiler: ClassVar[str | None] = "vopt.profiling.openvino:profile_ir"
    extra: ClassVar[str] = "openvino"

    @classmethod
    def detect(cls, path: Path) -> Path | None:
        if path.suffix.lower() == ".xml" or (path.is_dir() and any(path.glob("*.xml"))):
            return path
        return None

    @classmethod
    def companions(cls, path: Path) -> list[Path]:
        weights = path.with_suffix(".bin")
        return [weights] if path.suffix == ".xml" and weights.is_file() else []

    @classmethod
    def size(cls, path: Path) -> int:
        return path_size(path) + sum(path_size(p) for p in cls.companions(path))

    @classmethod
    def io(cls, path: Path, before: IOSpec) -> IOSpec:
        """Read back from the model; dynamic dims keep the name they had."""
        import openvino as ov

        model = ov.Core().read_model(str(_xml(path)))
        names = {"inputs": [t.shape for t in before.inputs], "outputs": [t.shape for t in before.outputs]}

        def specs(ports: Any, kind: str) -> list[TensorSpec]:
            result = []
            for i, port in enumerate(ports):
                old = names[kind][i] if i < len(names[kind]) else []
                shape = [
                    d.get_length()
                    if d.is_static
                    else (old[j] if j < len(old) and isinstance(old[j], str) else "dynamic")
                    for j, d in enumerate(port.get_partial_shape())
                ]
                result.append(
                    TensorSpec(
                        name=port.get_any_name(), shape=shape, dtype=port.get_element_type().to_dtype().name
                    )
                )
            return result

        return IOSpec(inputs=specs(model.inputs, "inputs"), outputs=specs(model.outputs, "outputs"))

    @classmethod
    def inspect(cls, path: Path) -> dict[str, Any]:
        import openvino as ov

        from vopt.formats.metadata import dtype_name

        xml = _xml(path)
        model = ov.Core().read_model(str(xml))

        def io(port: Any) -> dict[str, Any]:
            try:
                name = port.get_any_name()
            except RuntimeError:
                name = "?"
            return {
                "name": name,
                "shape": str(port.get_partial_shape()),
                "dtype": port.get_element_type().get_type_name(),
            }

        ops = Counter(op.get_type_name() for op in model.get_ordered_ops())
        mix = Counter(
            dtype_name(op.get_output_element_type(0).get_type_name())
            for op in model.get_ordered_ops()
            if op.get_type_name() == "Constant"
        )
        meta = {}
        rt = model.get_rt_info()
        if "vopt" in rt:
            for key, value in rt["vopt"].items():
                meta[f"vopt.{key}"] = value.astype(str) if hasattr(value, "astype") else str(value)
        quant = (
            {"FakeQuantize": ops["FakeQuantize"], "scheme": "NNCF / FakeQuantize"}
            if ops.get("FakeQuantize")
            else {}
        )
        return {
            "format": cls.name,
            "detail": xml.name,
            "inputs": [io(p) for p in model.inputs],
            "outputs": [io(p) for p in model.outputs],
            "op_types": dict(ops.most_common()),
            "precision_mix": dict(mix.most_common()),
            "quantization": quant,
            "metadata": meta,
        }

    @classmethod
    def bare_artifact(cls, path: Path) -> Artifact:
        from vopt.errors import missing_extra
        from vopt.formats.metadata import preprocess_from

        try:
            import openvino as ov
        except ImportError:
            raise missing_extra("openvino", "openvino") from None
        model = ov.Core().read_model(str(_xml(path)))
        inp = model.inputs[0]
        shape: list[int | str] = [
            d.get_length() if d.is_static else ("batch" if i == 0 else f"d{i}")
            for i, d in enumerate(inp.get_partial_shape())
        ]
        meta = {}
        if model.has_rt_info(["vopt", "preprocess"]):
            meta["vopt.preprocess"] = model.get_rt_info(["vopt", "preprocess"]).astype(str)
        io = IOSpec(
            inputs=[TensorSpec(name=inp.get_any_name(), shape=shape)],
            outputs=[TensorSpec(name=o.get_any_name(), shape=[]) for o in model.outputs],
        )
        return Artifact(path=str(path), format=cls.name, io=io, preprocess=preprocess_from(meta, shape))


def _xml(path: Path) -> Path:
    return path if path.suffix == ".xml" else sorted(path.glob("*.xml"))[0]
