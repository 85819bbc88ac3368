from __future__ import annotations

from vopt.models.families.base import Family, register_family


@register_family
class _Placeholder(Family):
    name = "yolos"
    model_types = ("yolos",)
