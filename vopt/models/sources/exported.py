"""`exported`: a torch.export program (.pt2, from torch.export.save). A fixed graph, like TorchScript."""

from __future__ import annotations

from vopt.errors import BuildError
from vopt.models.sources.base import LoadedModel, Source
from vopt.models.sources.plain import family_of_spec
from vopt.models.sources.torchscript import _file


class ExportedSource(Source):
    name = "exported"

    def load(self, spec) -> LoadedModel:
        import torch

        path = _file(spec, "torch.export program (.pt2)")
        try:
            module = torch.export.load(str(path)).module()
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise BuildError(f"cannot load exported program {path}: {first}", stage="load") from None
        family = family_of_spec(spec)
        return LoadedModel(module, family, spec.task or family.task, labels=spec.labels,
                           module_file=path, module_format="exported", notes=[f"torch.export program {path.name}"])
