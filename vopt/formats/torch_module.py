"""`torch-module`: a PyTorch module as vopt caches it (safetensors weights plus an architecture reference,
or a fixed TorchScript / torch.export graph the user gave). It runs in PyTorch eager."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from vopt.formats.base import Format

if TYPE_CHECKING:
    from vopt.core.artifact import Artifact
    from vopt.runtimes.base import Runner, Unavailable

NAME = "torch-module"


class TorchModuleFormat(Format):
    name: ClassVar[str] = NAME
    description: ClassVar[str] = "PyTorch module"
    runtime_name: ClassVar[str | None] = "pytorch"
    check_label: ClassVar[str | None] = "pytorch eager"
    torch_module: ClassVar[bool] = True
    reference: ClassVar[bool] = True

    @classmethod
    def runtime_missing(cls) -> str | None:
        return None

    @classmethod
    def open(
        cls,
        artifact: Artifact | Path | str,
        *,
        settings: dict[str, Any] | None = None,
        threads: int | None = None,
        accurate: bool = False,
    ) -> Runner | Unavailable:
        """The module in eager mode, outputs named as its family names them."""
        import numpy as np
        import torch

        from vopt.core.artifact import Artifact as _Artifact
        from vopt.models.resolve import OutputWrapper, family_of, load_module
        from vopt.runtimes.base import Runner, Unavailable

        if not isinstance(artifact, _Artifact):
            return Unavailable(
                "a torch module runs from its artifact (weights plus architecture), not a path"
            )
        family = family_of(artifact)
        module = OutputWrapper.wrap(load_module(artifact), family)
        names = [t.name for t in artifact.io.inputs] or ["pixel_values"]  # several for a UNet
        input_name = names[0]

        def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            with torch.no_grad():
                outs = module(*(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in names))
            return {n: t.detach().float().numpy() for n, t in zip(family.outputs, outs, strict=True)}

        return Runner(run=run, runtime="pytorch", info={"input_name": input_name, "static_batch": None})
