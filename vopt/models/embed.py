"""Preprocessing inside the exported graph (`export.embed_preprocessing`): the artifact takes raw uint8 NHWC
RGB pixels, as a camera, a browser canvas or a mobile app provides them, and does cast, optional resize and
centre crop, channel order, layout and mean/std itself, so nothing on the device normalizes (or forgets
to)."""

from __future__ import annotations

from typing import Any

from vopt.core.artifact import Preprocess


def raw_contract(contract: Preprocess, camera_size: list[int] | None) -> Preprocess:
    """What the caller still does outside the graph: without a camera size, the resize and crop (to the
    model's input size); with one, only delivering frames of that size. Everything numeric is in the graph."""
    # A camera frame is the photo at the camera's size, centre-cropped to its aspect ratio (not stretched).
    return Preprocess(
        size=list(camera_size or contract.size),
        resize=min(camera_size) if camera_size else contract.resize,
        mean=[0.0, 0.0, 0.0],
        std=[1.0, 1.0, 1.0],
        scale=1.0,
        channel_order="RGB",
        layout="NHWC",
        dtype="uint8",
    )


def embedded_steps(contract: Preprocess, camera_size: list[int] | None) -> dict[str, Any]:
    """What the graph does, for the artifact's metadata (`vopt.embedded_preprocessing`)."""
    steps: dict[str, Any] = {
        "input": "uint8 NHWC RGB",
        "scale": contract.scale,
        "mean": contract.mean,
        "std": contract.std,
        "channel_order": contract.channel_order,
        "layout": contract.layout,
    }
    if camera_size:
        steps.update(
            camera_size=list(camera_size),
            resize=contract.resize,
            crop=list(contract.size),
            interpolation="bilinear (no antialias)",
        )
    return steps


def embed(model: Any, contract: Preprocess, camera_size: list[int] | None) -> Any:
    """`model` (float pixels in the contract's layout) behind the contract's preprocessing, as one module."""
    import torch

    scale = torch.tensor(contract.scale, dtype=torch.float32)
    mean = torch.tensor(contract.mean, dtype=torch.float32).reshape(1, 3, 1, 1)
    std = torch.tensor(contract.std, dtype=torch.float32).reshape(1, 3, 1, 1)
    h, w = contract.size

    class _Embedded(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            # Folded: x * (scale / std) - mean / std, one Mul and one Sub in the graph.
            self.register_buffer("gain", scale / std)
            self.register_buffer("offset", mean / std)

        def forward(self, image):
            x = image.permute(0, 3, 1, 2).to(torch.float32)
            if camera_size:
                x = _resize_crop(x, contract.resize, h, w)
            if contract.channel_order == "BGR":
                x = x[:, [2, 1, 0]]
            x = x * self.gain - self.offset
            if contract.layout == "NHWC":
                x = x.permute(0, 2, 3, 1)
            return self.model(x)

    return _Embedded().eval()


def _resize_crop(x: Any, resize: int | None, h: int, w: int) -> Any:
    """Short side to `resize` then centre crop (h, w); without `resize`, straight to (h, w). Sizes are static:
    the camera size is fixed at export."""
    import torch.nn.functional as F

    ih, iw = int(x.shape[2]), int(x.shape[3])
    if not resize:
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    s = resize / min(ih, iw)
    rh, rw = max(h, round(ih * s)), max(w, round(iw * s))
    x = F.interpolate(x, size=(rh, rw), mode="bilinear", align_corners=False)
    top, left = (rh - h) // 2, (rw - w) // 2
    return x[:, :, top : top + h, left : left + w]
