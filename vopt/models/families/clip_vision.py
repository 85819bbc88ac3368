from __future__ import annotations

from vopt.models.families.base import Family, register_family


@register_family
class _Placeholder(Family):
    name = "clip_vision"
    model_types = ("clip_vision",)
