"""Model families: per-family I/O names, preprocessing, tolerances, export fixes and quantization
exclusions."""

from vopt.models.families.base import Family
from vopt.models.families.lookup import all_families, family_for, get_family

__all__ = ["Family", "all_families", "family_for", "get_family"]
