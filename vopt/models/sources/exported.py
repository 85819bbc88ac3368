"""`exported`: a torch.export program (.pt2, from torch.export.save). A fixed graph, like TorchScript."""

from __future__ import annotations

from vopt.models.sources.base import LoadedModel, Source
from vopt.models.sources.torchscript import _file, load_fixed_graph


class ExportedSource(Source):
    name = "exported"

    def load(self, spec) -> LoadedModel:
        import torch

        path = _file(spec, "torch.export program (.pt2)")
        return load_fixed_graph(
            spec, path, "torch.export program", "exported", lambda: torch.export.load(str(path)).module()
        )
