"""Plugin discovery reads each installed distribution's entry_points.txt, not its METADATA: parsing ~130
METADATA files once per plugin group took 1.2 s of every vopt command (an unchanged rebuild was 2.1 s)."""

from __future__ import annotations

from importlib.metadata import PathDistribution

from vopt import registry


def test_discovery_parses_the_metadata_of_plugin_distributions_only(monkeypatch):
    registry._entry_points.cache_clear()
    parsed: list[str] = []
    read_text = PathDistribution.read_text

    def spy(self, filename):
        if filename in ("METADATA", "PKG-INFO"):
            parsed.append(str(self._path))
        return read_text(self, filename)

    monkeypatch.setattr(PathDistribution, "read_text", spy)
    tables = {group: registry.discover(group) for group in registry.GROUPS.values()}
    assert {"cpu", "openvino", "tensorrt"} <= set(tables["vopt.targets"])
    assert "onnx" in tables["vopt.formats"] and "yolo" in tables["vopt.families"]
    # vopt's own distribution, once (METADATA, or PKG-INFO for an egg-info); not every installed one per group
    assert len(set(parsed)) <= 1 and len(parsed) <= 2, parsed
