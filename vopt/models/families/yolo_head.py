"""The YOLO Detect head's own arithmetic as a named child module (`vopt_tail`), so its ONNX nodes are named
`.../vopt_tail/...` and int8 keeps them float by one glob (vopt.models.families.yolo). A module of its own,
imported only when a model is prepared: it imports torch, and `build_detection_model`'s module may be
reloaded by the factory loader (a class made there would differ from one build to the next)."""

from __future__ import annotations

from typing import Any

import torch


class Tail(torch.nn.Module):
    """The box decode, the class sigmoid and the concat (and YOLO26's top-k), run in this child. `head` is
    set with object.__setattr__: not a child module, so named_modules() has no cycle."""

    head: Any

    def inference(self, x: dict[str, Any]) -> Any:
        return self(x, "inference")

    def postprocess(self, preds: Any) -> Any:
        return self(preds, "postprocess")

    def forward(self, x: Any, what: str) -> Any:
        cls = type(self.head)  # the class's own methods: the head's instance attributes point here
        return cls._inference(self.head, x) if what == "inference" else cls.postprocess(self.head, x)
