"""Model families: per-family I/O names, preprocessing, tolerances, export fixes and quantization
exclusions."""

from vopt.models.families.base import Family, all_families, family_for, get_family, register_family

__all__ = ["Family", "all_families", "family_for", "get_family", "register_family"]
