from __future__ import annotations

from vopt.models.families.base import Family, register_family


@register_family
class _Placeholder(Family):
    name = "rt_detr"
    model_types = ("rt_detr",)
