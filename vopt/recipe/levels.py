"""`level: O0..O3`: presets that expand into explicit recipe keys (shown by `vopt plan`). The recipe's own
keys, its `extends` fragments and `--set` all win over the preset: it only fills what they leave unset."""

from __future__ import annotations

from typing import Any

from vopt.errors import RecipeError

LEVELS = ("O0", "O1", "O2", "O3")
DESCRIPTIONS = {
    "O0": "export only: no fusion, no simplification, no quantization",
    "O1": "O0 + Conv/BN fusion and graph simplification (onnxsim)",
    "O2": "O1 + the target's default reduced precision (its quantize scheme: int8 or fp16)",
    "O3": "O2 + accuracy-aware fallback against the default gates",
}


def preset(level: str, target_cls: Any) -> dict[str, Any]:
    """The keys a level stands for, on this target (its quantization scheme decides what 'reduced' means)."""
    if level not in LEVELS:
        raise ValueError(level)
    data: dict[str, Any] = {"fuse": None, "quantize": None, "export": {"simplify": False}}
    if level >= "O1":
        data.update(fuse={"conv_bn": True}, export={"simplify": True})
    if level >= "O2":
        # The target's own scheme at its default precision (int8 for cpu/openvino/qnn/tensorrt, fp16 for the
        # web targets and rocm, int8 weights for CoreML); a target with no scheme keeps its compile precision.
        data["quantize"] = {} if target_cls.quant_scheme else None
    if level >= "O3" and target_cls.quant_scheme:
        data["quantize"] = {"auto_fallback": True}
    return data


def expand_level(data: dict[str, Any], locations: dict[tuple, str], where: str) -> dict[str, Any]:
    """`data` with the level's preset under it; the preset's keys are located at the `level:` line."""
    from vopt.recipe.load import deep_merge
    from vopt.registry import TARGETS, load_object

    level = data.get("level")
    if level is None:
        return data
    if level not in LEVELS:
        raise RecipeError(
            f"{locations.get(('level',), where)}: level: '{level}' is not a level; use one of "
            + ", ".join(f"{k} ({v})" for k, v in DESCRIPTIONS.items())
        )
    target = (data.get("compile") or {}).get("target", "cpu")
    if target not in TARGETS:
        return data  # the recipe's validation names the unknown target
    base = preset(level, load_object(TARGETS[target]))
    line = locations.get(("level",), where)
    for key, value in base.items():
        if key in data and data[key] is None and value is not None:
            continue  # the recipe switched the section off explicitly
        _locate(locations, (key,), value, f"{line} (level {level})")
    return deep_merge(base, data)


def _locate(locations: dict[tuple, str], path: tuple, value: Any, where: str) -> None:
    locations.setdefault(path, where)
    if isinstance(value, dict):
        for k, v in value.items():
            _locate(locations, (*path, k), v, where)
