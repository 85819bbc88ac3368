"""`components`: an artifact made of named components, each an artifact of its own format (a text encoder, a
UNet and a VAE; a network and its NMS stage). On disk, one folder per component plus an index, the way
Optimum's diffusers export and optimum-intel lay out a pipeline:

  <dir>/components.json  {"format": 1, "components": {"unet": {"path": "unet/model.onnx", "format": "onnx"}}}
    <dir>/unet/model.onnx
    <dir>/vae_decoder/model.onnx

The engine runs transform stages on each component and caches each on its own; the composite is what its
components are (its sha256 and identity are made of theirs)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from vopt.formats.base import Format

if TYPE_CHECKING:
    from vopt.core.artifact import Artifact
    from vopt.runtimes.base import Runner, Unavailable

NAME = "components"
INDEX = "components.json"


class ComponentsFormat(Format):
    name: ClassVar[str] = NAME
    description: ClassVar[str] = "components"
    detect_order: ClassVar[int] = 5

    @classmethod
    def detect(cls, path: Path) -> Path | None:
        return path if path.is_dir() and (path / INDEX).is_file() else None

    @classmethod
    def size(cls, path: Path) -> int:
        from vopt.registry import get_format

        return sum(get_format(e["format"]).size(path / e["path"]) for e in cls.read_index(path).values())

    @classmethod
    def write(cls, artifact: Artifact, dst_dir: Path) -> Path:
        """Each component into its own folder, by its own format, and the index beside them."""
        from vopt.registry import get_format

        dst_dir.mkdir(parents=True, exist_ok=True)
        index: dict[str, Any] = {}
        for name, comp in artifact.components.items():
            written = get_format(comp.format).write(comp, dst_dir / name)
            index[name] = {"path": str(written.relative_to(dst_dir)), "format": comp.format}
        (dst_dir / INDEX).write_text(json.dumps({"format": 1, "components": index}, indent=1) + "\n")
        return dst_dir

    @classmethod
    def read_index(cls, path: Path) -> dict[str, dict[str, str]]:
        data = json.loads((path / INDEX).read_text())
        return dict(data.get("components") or {})

    @classmethod
    def inspect(cls, path: Path) -> dict[str, Any]:
        from vopt.registry import get_format

        parts = {}
        for name, entry in cls.read_index(path).items():
            fmt = get_format(entry["format"])
            parts[name] = {**fmt.inspect(path / entry["path"]), "path": entry["path"]}
        first = next(iter(parts.values()), {})
        last = list(parts.values())[-1] if parts else {}
        ops: dict[str, int] = {}
        for info in parts.values():
            for op, n in info.get("op_types", {}).items():
                ops[op] = ops.get(op, 0) + n
        return {
            "format": cls.name,
            "detail": f"{len(parts)} components: "
            + ", ".join(f"{n} ({p['format']})" for n, p in parts.items()),
            "inputs": first.get("inputs", []),
            "outputs": last.get("outputs", []),
            "op_types": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
            "precision_mix": {},
            "quantization": {},
            "metadata": first.get("metadata", {}),
            "components": parts,
        }

    @classmethod
    def open(
        cls,
        artifact: Artifact | Path | str,
        *,
        settings: dict[str, Any] | None = None,
        threads: int | None = None,
        accurate: bool = False,
    ) -> Runner | Unavailable:
        from vopt.runtimes.base import Unavailable

        return Unavailable("an artifact of components runs component by component (its family's pipeline)")


def combined_sha256(components: dict[str, Artifact]) -> str:
    """A set of components' hash: their names and hashes, in name order."""
    h = hashlib.sha256()
    for name, comp in sorted(components.items()):
        h.update(f"{name}\0{comp.sha256}\0".encode())
    return h.hexdigest()


def compose(template: Artifact, components: dict[str, Artifact], stage: str) -> Artifact:
    """The artifact of components a per-component step returns: `template`'s contract and metadata, these
    components, and one lineage entry whose key stands for the components' own step keys."""
    from vopt.core.artifact import LineageEntry

    sha = combined_sha256(components)
    # What the set is, in one word, for the manifest's headline: the components' precision when they agree.
    precisions = {c.meta.get("precision") for c in components.values()}
    meta = dict(template.meta)
    meta["precision"] = precisions.pop() if len(precisions) == 1 else "mixed"
    keys = hashlib.sha256(
        "".join(
            f"{n}\0{c.lineage[-1].key if c.lineage else ''}\0" for n, c in sorted(components.items())
        ).encode()
    ).hexdigest()
    return template.model_copy(
        update={
            "path": "",
            "format": NAME,
            "sha256": sha,
            "components": dict(components),
            "meta": meta,
            "lineage": [
                *template.lineage,
                LineageEntry(stage=stage, key=keys, parent_sha256=template.sha256),
            ],
        }
    )
