"""Every registered model family has a tiny config (what its tiny-model tests build) that its model type's
transformers config accepts. A family registered without one fails the suite."""

from __future__ import annotations

import importlib

import pytest

from vopt.models.families import Family, all_families, get_family
from vopt.registry import FAMILIES, load_object


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_entry_point_names_its_family(name):
    cls = load_object(FAMILIES[name])
    assert issubclass(cls, Family) and cls.name == name, (name, cls)
    assert importlib.import_module(cls.__module__).__name__.startswith("vopt.models.families.")


@pytest.mark.parametrize("family", sorted(all_families()))
def test_family_has_a_tiny_config_its_model_type_accepts(family):
    from transformers import CONFIG_MAPPING

    fam = get_family(family)
    assert fam.tiny_config, f"{family}: no tiny_config, so no tiny-model test builds it"
    if fam.config_library != "transformers":  # built by the family's own source from its tiny_model()
        from vopt.registry import SOURCES

        model = fam.tiny_model()
        assert model and model["source"] in SOURCES and model["weights"] == "random", (family, model)
        return
    assert fam.model_types and fam.model_types[0] in CONFIG_MAPPING, fam.model_types
    config = CONFIG_MAPPING[fam.model_types[0]](**fam.tiny_config)
    size = getattr(config, "hidden_size", None) or max(getattr(config, "hidden_sizes", [0]) or [0])
    assert size <= 512, f"{family}: tiny_config is not tiny (width {size})"
